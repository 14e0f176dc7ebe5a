"""gitmoor.settings: stores kept in the cluster (AppProjects; next: clusters,
repositories, accounts), read and written through :mod:`gitmoor.kube`.

Sits between the single-door modules and the engine: the engine enforces what
these stores hold, the CLI and the controller edit and watch them.
"""

from gitmoor.settings.projects import (
    create_project,
    delete_project,
    ensure_default_project,
    get_project,
    list_projects,
    patch_project,
    project_ref,
    update_project,
)

__all__ = [
    "create_project",
    "delete_project",
    "ensure_default_project",
    "get_project",
    "list_projects",
    "patch_project",
    "project_ref",
    "update_project",
]
