"""gitmoor.settings: stores kept in the cluster (AppProjects, destination clusters,
repository credentials; next: accounts), read and written through :mod:`gitmoor.kube`.

``clusters`` and ``repos`` are imported by their module path
(``gitmoor.settings.clusters``, ``gitmoor.settings.repos``), not re-exported here:
their names overlap (``secret_name``), and a command that needs one store need
not load the others.

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
