"""What counts as drift: normalisation, secret masking and the unified diff.

gitmoor compares the *predicted* object (the server's answer to a server-side
dry-run apply of the desired manifest) with the *live* one. Both come from the same
API server, so defaulting, admission and other field managers already agree; what is
left to remove is what the server changes on every write or owns outright:

- ``metadata.managedFields``, ``resourceVersion``, ``uid``, ``generation``,
  ``creationTimestamp``, ``selfLink``: bookkeeping the server writes. A dry-run
  predicts a new ``resourceVersion``, ``generation`` and ``managedFields`` timestamps
  even when nothing else changes (Flux's ``ssa`` strips the same fields before its
  dry-run diff).
- the annotations ``kubectl.kubernetes.io/last-applied-configuration`` (client-side
  apply's record, stale under server-side apply),
  ``deployment.kubernetes.io/revision`` (the deployment controller's counter), and
  gitmoor's own ``gitmoor.io/revision`` / ``gitmoor.io/version``: they record which
  commit last *wrote* an object, so they differ from the commit being compared on
  every object a new commit did not touch; counting them would make every commit
  rewrite every object (Argo CD likewise leaves its tracking annotation out of
  the diff).
- ``status``, for every kind: the dry-run echoes the live status (a patch cannot
  change it through the main resource when there is a status subresource, and
  manifests do not carry one when there is not), so any difference there is
  a controller at work, not drift. Argo CD's ``ignoreResourceStatusField: all``.
- the user's ``ignoreDifferences``: RFC 6901 JSON pointers per group/kind (and
  optionally name/namespace), removed from both sides as Argo CD does, so a field
  another actor owns (an HPA's ``/spec/replicas``) stops showing as drift.
- ``BUILTIN_RULES``: the same for the fields a known controller writes into an
  object Git declares (a Service selector's ``rollouts-pod-template-hash``), for
  every app and always respected at apply.

Both sides are then masked by the app's ``Redactor`` (:mod:`gitmoor.secrets.redact`:
Secret values and the fields of the app's and its project's ``redactions``) before
anything is rendered, so no such value ever reaches a diff, a log or the
Application's status.
"""

from __future__ import annotations

import base64
import difflib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from gitmoor.model import JSONDict, ObjectRef, UserInputError
from gitmoor.model.application import REVISION_ANNOTATION, VERSION_ANNOTATION
from gitmoor.model.jsondata import copy_json
from gitmoor.secrets.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Sequence

SERVER_OWNED_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
)
IGNORED_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    REVISION_ANNOTATION,
    VERSION_ANNOTATION,
)

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 JSON pointer, unescaped.

    ``~1`` is ``/`` and ``~0`` is ``~``, unescaped in that order (RFC 6901 §4), so
    ``/metadata/annotations/example.com~1owner`` names the key ``example.com/owner``.
    The empty pointer (the whole document) is refused: ignoring a whole object is
    not a difference rule but an exclusion.
    """
    if not pointer.startswith("/"):
        raise UserInputError(
            f"JSON pointer {pointer!r} must start with '/' (RFC 6901)", concerns="ignoreDifferences"
        )
    if _BAD_ESCAPE.search(pointer):
        raise UserInputError(
            f"JSON pointer {pointer!r}: '~' must be followed by 0 or 1 (RFC 6901)",
            concerns="ignoreDifferences",
        )
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def _remove(obj: Any, tokens: tuple[str, ...]) -> None:
    """Delete the value ``tokens`` point at, if it exists; a missing path is a no-op."""
    cur = obj
    for i, token in enumerate(tokens):
        final = i == len(tokens) - 1
        if isinstance(cur, dict):
            if token not in cur:
                return
            if final:
                del cur[token]
                return
            cur = cur[token]
        elif isinstance(cur, list):
            # RFC 6901 array indices: no sign, no leading zeros; "-" (past the
            # end) never names an existing element.
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(cur):
                return
            if final:
                del cur[int(token)]
                return
            cur = cur[int(token)]
        else:
            return


def _lookup(obj: Any, tokens: tuple[str, ...]) -> tuple[bool, Any]:
    """(True, value) at ``tokens`` in ``obj``, or (False, None) when the path is absent."""
    cur = obj
    for token in tokens:
        if isinstance(cur, dict) and token in cur:
            cur = cur[token]
        elif isinstance(cur, list) and _ARRAY_INDEX.fullmatch(token) and int(token) < len(cur):
            cur = cur[int(token)]
        else:
            return False, None
    return True, cur


def _put(obj: Any, tokens: tuple[str, ...], value: Any) -> None:
    """Set ``value`` at ``tokens``, creating missing maps on the way; a path through a
    list element that ``obj`` lacks is left alone (an index names no new element)."""
    if not _puttable(obj, tokens):
        return
    cur = obj
    for i, token in enumerate(tokens):
        final = i == len(tokens) - 1
        if isinstance(cur, dict):
            if final:
                cur[token] = value
                return
            nxt = cur.get(token)
            if not isinstance(nxt, dict | list):
                nxt = cur[token] = {}
            cur = nxt
        elif isinstance(cur, list):
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(cur):
                return
            if final:
                cur[int(token)] = value
                return
            cur = cur[int(token)]
        else:
            return


def _puttable(obj: Any, tokens: tuple[str, ...]) -> bool:
    """Can ``_put`` reach ``tokens`` without inventing a list element? Checked first,
    so that a path it cannot complete leaves no empty maps behind."""
    cur = obj
    for i, token in enumerate(tokens[:-1]):
        if isinstance(cur, dict):
            nxt = cur.get(token)
            if not isinstance(nxt, dict | list):
                # Maps can be made from here on, as long as no index follows.
                return not any(_ARRAY_INDEX.fullmatch(t) for t in tokens[i + 1 :])
            cur = nxt
        elif isinstance(cur, list):
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(cur):
                return False
            cur = cur[int(token)]
        else:
            return False
    return isinstance(cur, dict) or (
        isinstance(cur, list)
        and bool(_ARRAY_INDEX.fullmatch(tokens[-1]))
        and int(tokens[-1]) < len(cur)
    )


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """One ``ignoreDifferences`` entry of an Application (Argo CD's shape).

    ``group`` is "" for the core group; ``group`` and ``kind`` may be ``*``. A rule
    without ``name`` / ``namespace`` applies to every object of the kind.
    """

    group: str
    kind: str
    name: str | None = None
    namespace: str | None = None
    json_pointers: tuple[str, ...] = ()
    _parsed: tuple[tuple[str, ...], ...] = field(
        init=False, repr=False, compare=False, hash=False, default=()
    )

    def __post_init__(self) -> None:
        # Accept any sequence (a list from a parsed spec) but store a tuple, and
        # validate once, at construction, so a bad pointer is reported with the
        # Application rather than on every comparison.
        pointers = tuple(self.json_pointers)
        object.__setattr__(self, "json_pointers", pointers)
        object.__setattr__(self, "_parsed", tuple(parse_pointer(p) for p in pointers))

    def matches(self, ref: ObjectRef) -> bool:
        return (
            self.group in ("*", ref.group)
            and self.kind in ("*", ref.kind)
            and (self.name is None or self.name == ref.name)
            and (self.namespace is None or self.namespace == ref.namespace)
        )

    def apply(self, obj: JSONDict) -> None:
        """Remove the rule's pointers from ``obj`` in place."""
        for tokens in self._parsed:
            _remove(obj, tokens)

    def keep_live(self, desired: JSONDict, live: JSONDict) -> None:
        """Give ``desired`` (in place) the live values at the rule's pointers.

        Argo CD's ``RespectIgnoreDifferences=true``: before the apply, the target
        takes the live object's values at the ignored paths, so the sync writes
        back what another actor set (an HPA's replicas) instead of Git's value. A
        path the live object lacks is dropped from ``desired`` too. Under
        server-side apply, equal values make no conflict, so nothing is taken.
        """
        for tokens in self._parsed:
            found, value = _lookup(live, tokens)
            if not found:
                _remove(desired, tokens)
            else:
                _put(desired, tokens, copy_json(value))


#: The selector key Argo Rollouts' controller (and gitmoor's, gitmoor.rollouts)
#: adds to a Rollout's ``activeService``/``previewService``/``canaryService``/
#: ``stableService`` to point it at one ReplicaSet.
ROLLOUTS_HASH_KEY = "rollouts-pod-template-hash"

#: Rules the engine applies to every app, whatever its spec: ignored in the diff
#: *and* respected at apply (the live value sent back, as under
#: ``RespectIgnoreDifferences=true``), whatever the app's sync options.
#:
#: The one such field is a Service's ``/spec/selector/rollouts-pod-template-hash``:
#: the Rollout controller writes it, Git never has it (Argo Rollouts documents
#: the key as the controller's; users write the selector without it). Under Argo
#: CD's default client-side apply it never shows: the three-way merge removes only
#: what ``last-applied-configuration`` had, and that never had the key, so Argo CD
#: users add no rule for it. Under server-side apply a Service's ``spec.selector``
#: is an *atomic* map (``x-kubernetes-map-type: atomic`` in the core/v1 OpenAPI;
#: measured in tests/integration/rollouts/test_bluegreen.py): an apply of Git's
#: selector replaces it whole and drops the key, and the dry-run predicts that,
#: so the app would read OutOfSync during every rollout and a self-heal would
#: point the Services at every ReplicaSet at once. Argo CD's documented remedy
#: under ``ServerSideApply=true`` is exactly this rule written by hand
#: (ignoreDifferences + RespectIgnoreDifferences); gitmoor always applies
#: server-side, so it is built in, and a Rollout in a gitmoor app needs nothing.
BUILTIN_RULES: tuple[IgnoreRule, ...] = (
    IgnoreRule(
        group="",
        kind="Service",
        json_pointers=(f"/spec/selector/{ROLLOUTS_HASH_KEY}",),
    ),
)


def respected(rule: IgnoreRule, respect_ignored: bool) -> bool:
    """Is ``rule``'s live value sent back at apply? Always for a built-in rule; for
    the app's own, under ``RespectIgnoreDifferences=true`` only (Argo CD's default
    applies Git's value at an ignored path)."""
    return respect_ignored or rule in BUILTIN_RULES


def _ref_of(obj: JSONDict) -> ObjectRef:
    api_version = obj.get("apiVersion")
    group, _, version = (
        api_version.rpartition("/") if isinstance(api_version, str) else ("", "", "")
    )
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return ObjectRef(
        group,
        version,
        str(obj.get("kind") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


def normalize(obj: JSONDict, ignore: Sequence[IgnoreRule] = ()) -> JSONDict:
    """A copy of ``obj`` without the fields that never count as drift (see module doc)."""
    # Drop status and the server's metadata before copying: managedFields is often
    # the largest part of a live object, and copying it only to delete it cost
    # a third of the time of comparing an unchanged object.
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_OWNED_METADATA}
    out = copy_json(out)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            for key in IGNORED_ANNOTATIONS:
                annotations.pop(key, None)
    if ignore:
        ref = _ref_of(out)
        for rule in ignore:
            if rule.matches(ref):
                rule.apply(out)
    if isinstance(meta, dict) and meta.get("annotations") == {}:
        # Emptied above or by a rule: {} on one side and no key on the other is
        # no difference.
        del meta["annotations"]
    return out


#: the Redactor of a comparison made without an app (tests, tools): the engine
#: always passes the app's, whose masks cannot be correlated with another app's
_NO_APP = Redactor("")


def _is_secret(obj: JSONDict | None) -> bool:
    return obj is not None and obj.get("apiVersion") == "v1" and obj.get("kind") == "Secret"


def _fold_string_data(secret: JSONDict) -> None:
    """Move ``stringData`` into ``data``, base64-encoded, as the API server does on write.

    gitops-engine ``NormalizeSecret``: a manifest with ``stringData`` and a live
    object with the same value in ``data`` are the same Secret.
    """
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, dict):
        return
    data = secret.get("data")
    if not isinstance(data, dict):
        data = secret["data"] = {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value or "").encode()).decode()


try:
    # libyaml's emitter: the same output as PyYAML's pure-Python one, seven times
    # faster (0.1 ms instead of 0.7 ms for a 0.5 KB ConfigMap); dumping the objects
    # of a new app for their "added" diff was a seventh of the controller's CPU in
    # bench/controller.py's initial convergence.
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]


class _DiffDumper(_BaseDumper):
    """Multi-line strings as ``|`` blocks, so a changed line of a script or a config
    file shows as that one line in the diff rather than as one long quoted scalar."""


def _represent_str(dumper: _BaseDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_DiffDumper.add_representer(str, _represent_str)


def _dump(obj: JSONDict | None) -> list[str]:
    if obj is None:
        return []
    text = yaml.dump(
        obj, Dumper=_DiffDumper, sort_keys=True, default_flow_style=False, allow_unicode=True
    )
    return text.splitlines(keepends=True)


def object_path(ref: ObjectRef) -> str:
    """``Deployment.apps/shop/web``, or ``Namespace/shop`` when cluster-scoped."""
    parts = (
        [ref.group_kind, ref.namespace, ref.name] if ref.namespace else [ref.group_kind, ref.name]
    )
    return "/".join(parts)


def unified_diff(ref: ObjectRef, live: JSONDict | None, predicted: JSONDict | None) -> str:
    """A unified diff from live to desired of the YAML dumps; "" when they are equal.

    Keys are sorted so that the diff shows changes, not key order. A missing side
    (object to create, or to prune) is an empty file.
    """
    path = object_path(ref)
    return "".join(
        difflib.unified_diff(
            _dump(live), _dump(predicted), fromfile=f"live/{path}", tofile=f"desired/{path}"
        )
    )


@dataclass(frozen=True, slots=True)
class ResourceDiff:
    """One object compared: the normalised, masked sides and the diff between them.

    ``live`` and ``predicted`` are what the diff was made from, so they are safe to
    show or store: Secret values are masked in them too.
    """

    ref: ObjectRef
    live: JSONDict | None = field(hash=False)
    predicted: JSONDict | None = field(hash=False)
    diff: str
    changed: bool


def compare(
    ref: ObjectRef,
    live: JSONDict | None,
    predicted: JSONDict | None,
    ignore: Sequence[IgnoreRule] = (),
    redactor: Redactor | None = None,
) -> ResourceDiff:
    """Normalise both sides, mask them through ``redactor`` (the app's: see
    ``gitmoor.engine.redactor_for``), and diff.

    Both sides go through the one Redactor, so an unchanged Secret value masks the
    same on both and shows no change, and a changed one masks differently and
    shows as changed, without either value in the diff.

    ``changed`` is decided on the normalised sides before masking: a mask carries
    32 bits of a digest, and two values whose masks collide would otherwise make
    a changed Secret look unchanged, and the sync (``judge``) skip applying it.
    The diff shown is of the masked sides; in that (rare) case it is empty while
    ``changed`` is true, and a line says why instead of showing no change.
    """
    redactor = redactor or _NO_APP
    plain: list[JSONDict | None] = []
    for obj in (live, predicted):
        if obj is None:
            plain.append(None)
            continue
        side = normalize(obj, ignore)
        if _is_secret(side):
            _fold_string_data(side)
        plain.append(side)
    plain_live, plain_predicted = plain
    if _identical(plain_live, plain_predicted):
        # Identical values of identical types dump to identical YAML: the diff is
        # "" without dumping (the dumps were nine tenths of comparing an
        # unchanged object, and most objects of a refresh are unchanged). The
        # masked copies are what callers show.
        masked = _masked(redactor, plain_live)
        return ResourceDiff(ref, masked, _masked(redactor, plain_predicted), "", changed=False)
    masked_live, masked_predicted = (
        _masked(redactor, plain_live),
        _masked(redactor, plain_predicted),
    )
    diff = unified_diff(ref, masked_live, masked_predicted)
    if not diff:
        # Equal once masked, different before: a digest collision of two values,
        # or a type that YAML dumps alike (1 and 1.0). The object is changed all
        # the same; the diff says so without the values.
        diff = f"# {ref}: changed (the values differ; their masks and YAML do not)\n"
    return ResourceDiff(ref, masked_live, masked_predicted, diff, changed=True)


def _masked(redactor: Redactor, side: JSONDict | None) -> JSONDict | None:
    """``side`` masked by ``redactor``: a copy only where there is something to mask
    (``side`` is normalize's own copy, which callers never see unmasked)."""
    if side is None or not redactor.covers(side):
        return side
    return redactor.mask(side)


def _identical(a: Any, b: Any) -> bool:
    """Equal and of the same types throughout: stricter than ``==``, for which
    ``1 == 1.0 == True`` although their YAML differs."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)  # 0.0 == -0.0, but they dump differently
    return bool(a == b)
