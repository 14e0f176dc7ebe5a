"""The ApplicationSet: one template, many Applications.

Mirrors ``applicationsets.gitmoor.io/v1alpha1`` (``gitmoor/crds/applicationsets.yaml``),
whose shape is Argo CD's ApplicationSet so that an existing one moves over by
changing its ``apiVersion``. Generators and the template stay raw JSON here:
their meaning (and their templating) belongs to ``gitmoor.engine.appset``; this
module checks only what can be checked without running them, and raises
UserInputError naming the field.

The policy, Argo CD's ``spec.syncPolicy.applicationsSync``, has Argo CD's four
values (its "Managed Applications modification Policies"):

- ``create-only``: create missing apps, never change or delete one;
- ``create-update`` (the default): create and update, never delete;
- ``create-delete``: create, and delete the apps no element produces any more,
  but never update one (an app edited by hand, or a template change, is left as
  it is: Argo CD "prevents the controller from modifying applications");
- ``sync``: create, update, and delete the apps no element produces any more.

Argo CD's default is ``sync``; gitmoor's default never deletes (issue 15), so a
generator that briefly returns nothing (a bad push, a cluster Secret edited)
cannot take every app down with it. ``spec.syncPolicy.policy`` is gitmoor's own
spelling of the same field; when both are given they must agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmoor.model.errors import UserInputError

JSONDict = dict[str, Any]

APPSET_GROUP = "gitmoor.io"
APPSET_VERSION = "v1alpha1"
APPSET_API_VERSION = f"{APPSET_GROUP}/{APPSET_VERSION}"
APPSET_KIND = "ApplicationSet"
#: on every Application an ApplicationSet made: the set's name (Argo CD tracks
#: ownership with an ownerReference only; the label lets a list select them)
APPSET_LABEL = "gitmoor.io/application-set"

POLICY_CREATE_ONLY = "create-only"
POLICY_CREATE_UPDATE = "create-update"
POLICY_CREATE_DELETE = "create-delete"
POLICY_SYNC = "sync"
POLICIES = (POLICY_CREATE_ONLY, POLICY_CREATE_UPDATE, POLICY_CREATE_DELETE, POLICY_SYNC)
DEFAULT_POLICY = POLICY_CREATE_UPDATE

#: the generator kinds gitmoor runs; Argo CD's others (scmProvider, pullRequest,
#: clusterDecisionResource, plugin) are refused by name rather than ignored
GENERATOR_KINDS = ("list", "git", "clusters", "matrix", "merge")
_UNSUPPORTED_KINDS = ("scmProvider", "pullRequest", "clusterDecisionResource", "plugin")
#: what a generator may carry beside its kind: Argo CD's post selector (the
#: template override sits inside the kind: ``list: {elements, template}``)
_GENERATOR_EXTRAS = ("selector",)

_MISSINGKEY = ("missingkey=default", "missingkey=invalid", "missingkey=zero", "missingkey=error")


@dataclass(frozen=True, slots=True)
class ApplicationSet:
    name: str
    namespace: str
    uid: str
    #: validated raw generator specs (each has exactly one known kind)
    generators: tuple[JSONDict, ...]
    #: spec.template (metadata + spec of an Application), raw
    template: JSONDict
    #: spec.goTemplate: Go template syntax (``{{.path.basename}}``) instead of
    #: fasttemplate (``{{path.basename}}``)
    go_template: bool
    #: e.g. ("missingkey=error",)
    go_template_options: tuple[str, ...]
    #: "create-only" | "create-update" | "create-delete" | "sync"
    policy: str
    #: spec.syncPolicy.preserveResourcesOnDeletion: deleting a generated app
    #: leaves its objects in the cluster
    preserve_resources_on_deletion: bool
    raw: JSONDict

    @property
    def deletes(self) -> bool:
        """Whether apps that no element produces any more are deleted."""
        return self.policy in (POLICY_CREATE_DELETE, POLICY_SYNC)

    @property
    def updates(self) -> bool:
        """Whether existing apps are brought back to what the template renders."""
        return self.policy in (POLICY_CREATE_UPDATE, POLICY_SYNC)


def generator_kind(gen: Any, where: str) -> str:
    """The one kind of a generator spec; a spec with none, two, or an unknown key
    is refused (Argo CD silently skips a generator without a kind; a typo would
    then produce no apps, and under policy ``sync`` delete them all)."""
    if not isinstance(gen, dict):
        raise UserInputError(f"{where} must be an object", concerns=where)
    kinds = [k for k in gen if k in GENERATOR_KINDS]
    unsupported = [k for k in gen if k in _UNSUPPORTED_KINDS]
    if unsupported:
        raise UserInputError(
            f"{where}: the {unsupported[0]} generator is not supported "
            f"(supported: {', '.join(GENERATOR_KINDS)})",
            concerns=where,
        )
    unknown = [k for k in gen if k not in GENERATOR_KINDS and k not in _GENERATOR_EXTRAS]
    if unknown:
        raise UserInputError(f"{where}: unknown field {unknown[0]!r}", concerns=where)
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise UserInputError(
            f"{where} must name exactly one generator kind ({', '.join(GENERATOR_KINDS)}); "
            f"found {found}",
            concerns=where,
        )
    kind = kinds[0]
    if not isinstance(gen[kind], dict):
        raise UserInputError(f"{where}.{kind} must be an object", concerns=where)
    if "template" in gen[kind] and not isinstance(gen[kind]["template"], dict):
        raise UserInputError(f"{where}.{kind}.template must be an object", concerns=where)
    if "selector" in gen and not isinstance(gen["selector"], dict):
        raise UserInputError(f"{where}.selector must be an object", concerns=where)
    return str(kind)


def check_generator(gen: Any, where: str, *, depth: int = 0) -> None:
    """Check what a generator's shape says without running it: one kind, and
    matrix / merge with their children (recursively, one level of nesting as
    Argo CD allows)."""
    kind = generator_kind(gen, where)
    body = gen[kind]
    if kind not in ("matrix", "merge"):
        return
    children = body.get("generators")
    if not isinstance(children, list):
        raise UserInputError(f"{where}.{kind}.generators must be a list", concerns=where)
    if kind == "matrix" and len(children) != 2:
        # Argo CD: ErrMoreThanTwoGenerators / ErrLessThanTwoGenerators
        raise UserInputError(
            f"{where}.matrix must have exactly two child generators, found {len(children)}",
            concerns=where,
        )
    if kind == "merge":
        if len(children) < 2:
            raise UserInputError(
                f"{where}.merge needs two or more child generators, found {len(children)}",
                concerns=where,
            )
        keys = body.get("mergeKeys")
        if (
            not isinstance(keys, list)
            or not keys
            or not all(isinstance(k, str) and k for k in keys)
        ):
            raise UserInputError(
                f"{where}.merge.mergeKeys must be a non-empty list of parameter names",
                concerns=where,
            )
    if depth >= 2:
        raise UserInputError(
            f"{where}: matrix and merge nest at most two levels deep", concerns=where
        )
    for i, child in enumerate(children):
        child_where = f"{where}.{kind}.generators[{i}]"
        check_generator(child, child_where, depth=depth + 1)
        child_kind = generator_kind(child, child_where)
        if _nonempty(child[child_kind].get("template")):
            # Only a top-level generator's override applies (to all it
            # produces); refusing a child's says so rather than ignoring it.
            raise UserInputError(
                f"{child_where}.{child_kind}.template: a child of {kind} cannot override "
                "the template (set it on the top-level generator)",
                concerns=child_where,
            )


def _nonempty(value: Any) -> bool:
    """Whether a template override says anything (Argo CD fills an unset one
    with empty metadata and spec)."""
    if isinstance(value, dict):
        return any(_nonempty(v) for v in value.values())
    return value not in (None, "", [], False)


def _policy(sync_policy: JSONDict, where: str) -> str:
    found: dict[str, str] = {}
    for field in ("applicationsSync", "policy"):
        value = sync_policy.get(field)
        if value is None:
            continue
        if not isinstance(value, str) or value not in POLICIES:
            raise UserInputError(
                f"spec.syncPolicy.{field} must be one of {', '.join(POLICIES)}, not {value!r}",
                concerns=where,
            )
        found[field] = value
    if len(set(found.values())) > 1:
        raise UserInputError(
            "spec.syncPolicy.applicationsSync and spec.syncPolicy.policy disagree "
            f"({found['applicationsSync']} vs {found['policy']}); set one",
            concerns=where,
        )
    return next(iter(found.values()), DEFAULT_POLICY)


def parse_appset(obj: dict[str, Any]) -> ApplicationSet:
    """The ApplicationSet ``obj`` describes; UserInputError naming the field."""
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    where = f"ApplicationSet {namespace}/{name}"
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise UserInputError("spec is required", concerns=where)
    gens = spec.get("generators")
    if not isinstance(gens, list) or not gens:
        raise UserInputError("spec.generators must be a non-empty list", concerns=where)
    for i, gen in enumerate(gens):
        try:
            check_generator(gen, f"spec.generators[{i}]")
        except UserInputError as e:
            raise UserInputError(e.message, concerns=where) from e
    template = spec.get("template")
    if not isinstance(template, dict):
        raise UserInputError("spec.template is required (an object)", concerns=where)
    # metadata.name may come from a generator's template override; rendering
    # checks the name each element gets.
    if not isinstance(template.get("metadata", {}), dict):
        raise UserInputError("spec.template.metadata must be an object", concerns=where)
    if not isinstance(template.get("spec"), dict):
        raise UserInputError("spec.template.spec is required (an object)", concerns=where)
    go_template = spec.get("goTemplate", False)
    if not isinstance(go_template, bool):
        raise UserInputError("spec.goTemplate must be true or false", concerns=where)
    options = spec.get("goTemplateOptions") or []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise UserInputError("spec.goTemplateOptions must be a list of strings", concerns=where)
    for o in options:
        # text/template's Option panics on anything else; refuse it up front.
        if o not in _MISSINGKEY:
            raise UserInputError(
                f"spec.goTemplateOptions: unknown option {o!r} (known: {', '.join(_MISSINGKEY)})",
                concerns=where,
            )
    sp = spec.get("syncPolicy") or {}
    if not isinstance(sp, dict):
        raise UserInputError("spec.syncPolicy must be an object", concerns=where)
    preserve = sp.get("preserveResourcesOnDeletion", False)
    if not isinstance(preserve, bool):
        raise UserInputError(
            "spec.syncPolicy.preserveResourcesOnDeletion must be true or false", concerns=where
        )
    return ApplicationSet(
        name=name,
        namespace=namespace,
        uid=str(meta.get("uid", "")),
        generators=tuple(gens),
        template=template,
        go_template=go_template,
        go_template_options=tuple(options),
        policy=_policy(sp, where),
        preserve_resources_on_deletion=preserve,
        raw=obj,
    )
