"""Projects enforced by the engine: before any git request, and on the render
before anything is applied.

Argo CD checks an app against its project in two places: the controller's
``ValidatePermissions`` (a missing project, a repository outside
``sourceRepos``, a destination outside ``destinations``: an ``InvalidSpecError``
condition, nothing compared or synced) and the sync (``IsResourcePermitted``
per object: "resource X is not permitted in project Y"). gitmoor does both in
the engine's :meth:`~gitmoor.engine.app.Engine.desired`, which refresh, sync,
rollback and diff all go through, so the CLI, the controller and the API
server cannot differ. Every refusal is a :class:`ProjectViolation` naming the
project and the field.

The second wall is Kubernetes RBAC: where the project names a ServiceAccount
for the destination (``destinationServiceAccounts``), the sync's requests
impersonate it (:func:`sync_identity`), so a hole in these checks still meets
the account's rights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.lint.required import check_required, required_rules
from gitmoor.model import UserInputError
from gitmoor.model.project import (
    DEFAULT_PROJECT,
    IN_CLUSTER,
    AppProject,
    ProjectViolation,
    ServiceAccount,
    default_project,
)
from gitmoor.source import normalize_repo_url, redact_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from gitmoor.model import Manifest
    from gitmoor.model.application import Application


def cluster_name(app: Application) -> str:
    """The app's destination cluster as projects name it: ``in-cluster`` for the home one."""
    return app.spec.destination.name or IN_CLUSTER


async def load_project(
    lookup: Callable[[str], Awaitable[AppProject | None]], app: Application
) -> AppProject:
    """The app's project; a missing one is refused, except ``default``.

    A missing ``default`` is Argo CD's default project (every repository,
    destination and kind): Argo CD's API server re-creates it at start when it
    is missing, so an Argo CD install never runs without it, and ``gitmoor
    install`` writes it so it can be seen and narrowed. Narrow it, don't delete
    it: deleting it restores the permissive default.
    """
    name = app.spec.project or DEFAULT_PROJECT
    project = await lookup(name)
    if project is not None:
        return project
    if name == DEFAULT_PROJECT:
        return default_project(app.namespace)
    raise ProjectViolation(
        f"application {app.name} references project {name}, which does not exist "
        f"in {app.namespace} (spec.project)",
        concerns=f"project {name}",
    )


def _pattern(url: str) -> str:
    """A sourceRepos pattern normalised like a URL where it parses as one
    (``git@host:org/*`` → ``ssh://host/org/*``); a glob that is no URL (``*.git``,
    a host glob) is compared as written, less ``.git`` and a trailing slash."""
    try:
        return normalize_repo_url(url)
    except UserInputError:
        return url.rstrip("/").removesuffix(".git")


def check_source(project: AppProject, app: Application) -> None:
    """Refuse a repository outside ``sourceRepos``; called before any git request."""
    url = app.spec.source.repo_url
    # A URL that does not parse is refused by source/ with its own sentence;
    # here it cannot be permitted either.
    try:
        target = normalize_repo_url(url)
    except UserInputError:
        target = url
    if not project.source_allowed(target, _pattern):
        raise ProjectViolation(
            f"project {project.name}: repository {redact_url(url)!r} is not permitted "
            "(spec.sourceRepos)",
            concerns=f"project {project.name}",
        )


def check_destination(project: AppProject, app: Application, server: str) -> None:
    """Refuse a destination outside ``destinations``."""
    cluster = cluster_name(app)
    ns = app.spec.destination.namespace
    if not project.destination_allowed(cluster, ns, server):
        on = "" if cluster == IN_CLUSTER else f" of cluster {cluster!r}"
        raise ProjectViolation(
            f'project {project.name}: destination namespace "{ns}"{on} is not permitted '
            "(spec.destinations)",
            concerns=f"project {project.name}",
        )


def namespace_check(project: AppProject, app: Application, server: str) -> Callable[[str], bool]:
    """Which namespaces rendered objects may name: those the project's
    destinations permit on the app's cluster (Argo CD's ``IsResourcePermitted``
    checks each object's namespace against them)."""
    cluster = cluster_name(app)
    return lambda ns: project.destination_allowed(cluster, ns, server)


def check_resources(project: AppProject, manifests: Sequence[Manifest]) -> None:
    """Refuse a render holding a kind the project denies, naming the first such
    object, where it came from, and the rule; called after prepare, which has
    told namespaced objects (a namespace) from cluster-scoped ones (none)."""
    refused: list[str] = []
    for m in manifests:
        namespaced = bool(m.ref.namespace)
        rule = project.resource_denial(m.ref.group, m.ref.kind, namespaced)
        if rule is None:
            continue
        scope = "namespaced" if namespaced else "cluster-scoped"
        why = (
            f"its kind is listed in {rule}"
            if rule.endswith("Blacklist")
            else f"{scope} kinds must be listed in {rule}"
        )
        at = f" (from {m.source})" if m.source else ""
        refused.append(f"{m.ref}{at} is not permitted: {why}")
    if refused:
        more = f" (and {len(refused) - 1} more objects)" if len(refused) > 1 else ""
        raise ProjectViolation(
            f"project {project.name}: {refused[0]}{more}",
            concerns=f"project {project.name}",
        )


def check_lint_rules(
    project: AppProject,
    manifests: Sequence[Manifest],
    *,
    decrypted: frozenset[str] = frozenset(),
    app_path: str = "",
) -> None:
    """Refuse a render that breaks a rule of ``spec.requiredLintRules``, naming
    the rule, the first such object and its file: the check ``gitmoor lint
    --required-rule`` runs before the merge (``gitmoor.lint.required``), run
    again on what would be applied. An object's ``gitmoor.io/lint-ignore``
    annotation does not waive it. A rule name the registry does not know
    refuses every render of the project (a typo must not require nothing)."""
    if not project.required_lint_rules:
        return
    try:
        rules = required_rules(project.required_lint_rules, "spec.requiredLintRules")
    except UserInputError as err:
        raise ProjectViolation(
            f"project {project.name}: {err.message}", concerns=f"project {project.name}"
        ) from None
    found = check_required(manifests, rules, decrypted=decrypted, app_path=app_path)
    if found:
        first = found[0]
        at = f" (from {first.file}{f':{first.line}' if first.line else ''})" if first.file else ""
        more = f" (and {len(found) - 1} more findings)" if len(found) > 1 else ""
        raise ProjectViolation(
            f"project {project.name}: {first.object}{at} breaks required lint rule "
            f"{first.rule} ({first.slug}): {first.message}{more}",
            concerns=f"project {project.name}",
        )


def sync_identity(project: AppProject, app: Application, server: str) -> ServiceAccount | None:
    """The ServiceAccount the app's sync, prune and hooks act as, or None for the
    engine's own identity (``destinationServiceAccounts``, Argo CD's sync
    impersonation). Comparisons (refresh, diff) keep the engine's identity, as
    Argo CD impersonates for sync operations only."""
    return project.service_account_for(cluster_name(app), app.spec.destination.namespace, server)


__all__ = [
    "ProjectViolation",
    "check_destination",
    "check_lint_rules",
    "check_resources",
    "check_source",
    "cluster_name",
    "load_project",
    "namespace_check",
    "sync_identity",
]
