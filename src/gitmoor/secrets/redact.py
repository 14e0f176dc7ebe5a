"""The one redaction policy: what every output of gitmoor masks, and how.

Every path that shows an object or a message (the CLI's diff, get and render,
status conditions and operation messages, Events, logs, the API, the UI,
notifications) goes through the app's ``Redactor``; only the operator's own log
lines go through the process-wide ``scrub_log`` (see below why).

What is masked:

- every value of a Secret's (core group) ``data`` and ``stringData``, as Argo CD
  (gitops-engine ``diff.HideSecretData``) and Flux (``ssa.SanitizeUnstructuredData``)
  do, and
- beyond both of them, every field a project or an app names in
  ``spec.redactions`` (``gitmoor.model.redaction.RedactRule``), in any kind: a JSON
  pointer (``/spec/credentials``) or a dotted key path of globs (``data.*token*``).

How: a masked value becomes ``<redacted:` + 8 hex + `>``, of one fixed length
(``MASK_LEN``) whatever the value's length, so a mask says nothing about the
value's size. Argo CD's ``+`` masks grow by four characters per distinct value of
a key within one diff; that shows *that* a value changed, but only inside one
diff: the same value masks differently in two diffs. Here the 8 hex are the
first 8 of HMAC-SHA256(app key, value), with the app key HMAC-SHA256(a random
secret of this process, the app's identity), so:

- an unchanged value masks the same on both sides of a diff, and a changed one
  differently (a change still shows as a change);
- equal values in two apps mask differently and cannot be correlated;
- nothing outside the process can test a guess (the process secret never leaves
  memory; a restart changes every mask, which is fine for outputs that are only
  ever compared within one diff or one view).

A Secret's ``data`` values are base64: their decoded bytes are what is digested,
so ``data: {k: czNjcjN0}`` and ``stringData: {k: s3cr3t}`` mask the same.

Values decrypted from SOPS outside a core Secret (a ConfigMap a
``configMapGenerator`` builds from an encrypted env file, an encrypted ConfigMap
or custom resource) are structure-blind: the render names them
(``RenderResult.secret_values``) and ``Redactor.learn_secret_values`` makes every
string field equal to one of them masked, in any kind (Argo CD and Flux mask
Secrets only, and would show such a ConfigMap in clear).

Free text (an API server's error that quotes a rejected value, a tool's stderr, a
log line) cannot be masked by structure. A ``Redactor`` therefore *learns* every
value it masks, and ``Redactor.scrub`` replaces each learned value found in a text
(and its base64 form) by its mask. Text an app's users see is scrubbed by that
app's Redactor only: a scrub over every app's values would be an oracle (a pod
that prints a guess would see, in its own logs, whether the guess is another app's
Secret value, and the mask would say which app). The process-wide registry of
every learned value (the last ``REGISTRY_SIZE``) serves the operator's own log
lines only: ``install_log_filter`` (and ``scrub_log``) put it under the logging of
a process.

This module is pure: the standard library and ``gitmoor.model`` only.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gitmoor.model.jsondata import copy_json, leaves

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from gitmoor.model import JSONDict
    from gitmoor.model.redaction import RedactRule

_PREFIX = "<redacted:"
_SUFFIX = ">"
_HEX = 8
#: the length of every mask, whatever the value's length
MASK_LEN = len(_PREFIX) + _HEX + len(_SUFFIX)

#: values shorter than this are masked in objects but not scrubbed from free text:
#: a two- or three-character value ("1", "yes", "dev") occurs all over ordinary
#: text, so replacing every occurrence would mangle messages and, worse, give the
#: value away (the reader sees which word turned into a mask).
SCRUB_MIN_LEN = 4
#: how many learned values the process-wide registry keeps (the most recent)
REGISTRY_SIZE = 50_000
#: how many learned values one Redactor keeps (an app's Secrets are far fewer)
REDACTOR_SIZE = 50_000

#: the annotation of client-side apply holds the whole object, masked values
#: included (Argo CD's HideSecretData drops it from Secrets for the same reason)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# Never masked whatever a rule says: they name the object, and a masked kind or
# name would make every output unreadable and could not be keyed by anyone.
_IDENTITY = frozenset({("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")})

# The process's secret: random per process, never written anywhere. Every mask is
# keyed by it (through the app key), so masks cannot be recomputed outside.
_PROCESS_SECRET = secrets.token_bytes(32)

# Domain separation of what is digested: a Secret's bytes or a string, versus the
# canonical JSON of a non-string value (so "5" and 5 mask differently, and a type
# change shows as a change).
_JSON_DOMAIN = b"\x00json\x00"


def _app_key(app: str) -> bytes:
    return hmac.new(_PROCESS_SECRET, app.encode(), hashlib.sha256).digest()


def _mask_bytes(key: bytes, value: bytes) -> str:
    return _PREFIX + hmac.new(key, value, hashlib.sha256).hexdigest()[:_HEX] + _SUFFIX


def is_mask(value: Any) -> bool:
    """Whether ``value`` is a mask this module made (of any app)."""
    return (
        isinstance(value, str)
        and len(value) == MASK_LEN
        and value.startswith(_PREFIX)
        and value.endswith(_SUFFIX)
    )


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def _group_of(obj: JSONDict) -> str:
    api_version = obj.get("apiVersion")
    return api_version.rpartition("/")[0] if isinstance(api_version, str) else ""


def is_secret(obj: JSONDict | None) -> bool:
    """A core-group Secret (``apiVersion: v1``); ``Secret`` kinds of other groups
    are custom resources and only masked where a rule names them."""
    return isinstance(obj, dict) and obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def _pointer_tokens(pointer: str) -> tuple[str, ...]:
    # RFC 6901: "~1" is "/" and "~0" is "~", unescaped in that order.
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


class _Path:
    """One field of a rule: exact tokens (a JSON pointer) or glob segments (a key path)."""

    __slots__ = ("globs", "segments")

    def __init__(self, field: str) -> None:
        if field.startswith("/"):
            self.segments = _pointer_tokens(field)
            self.globs = False
        else:
            self.segments = tuple(s for s in field.strip(".").split(".") if s)
            self.globs = True

    def walk(
        self, node: Any, path: tuple[str, ...] = ()
    ) -> Iterator[tuple[Any, Any, tuple[str, ...]]]:
        """Every (container, key, path) the field names in ``node``."""
        yield from self._walk(node, self.segments, path)

    def _walk(
        self, node: Any, rest: tuple[str, ...], path: tuple[str, ...]
    ) -> Iterator[tuple[Any, Any, tuple[str, ...]]]:
        if not rest:
            return
        seg, tail = rest[0], rest[1:]
        if isinstance(node, dict):
            for key in list(node):
                if not isinstance(key, str):
                    continue
                if self._match(key, seg):
                    yield from self._at(node, key, tail, (*path, key))
                elif self.globs and "." in key:
                    # A key with dots ("app.properties", "example.com/owner") is
                    # named by as many segments as it has parts: data.app.properties.
                    parts = key.split(".")
                    n = len(parts)
                    if n <= len(rest) and all(
                        fnmatch.fnmatchcase(p, s) for p, s in zip(parts, rest[:n], strict=True)
                    ):
                        yield from self._at(node, key, rest[n:], (*path, key))
        elif isinstance(node, list):
            for i in range(len(node)):
                if self._match(str(i), seg):
                    yield from self._at(node, i, tail, (*path, str(i)))

    def _at(
        self, node: Any, key: Any, tail: tuple[str, ...], path: tuple[str, ...]
    ) -> Iterator[tuple[Any, Any, tuple[str, ...]]]:
        if tail:
            yield from self._walk(node[key], tail, path)
        else:
            yield node, key, path

    def _match(self, key: str, seg: str) -> bool:
        return fnmatch.fnmatchcase(key, seg) if self.globs else key == seg


class _Rule:
    __slots__ = ("group", "kind", "paths")

    def __init__(self, rule: RedactRule) -> None:
        self.group = rule.group
        self.kind = rule.kind
        self.paths = tuple(_Path(f) for f in rule.fields)

    def matches(self, group: str, kind: str) -> bool:
        return fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(kind, self.kind)


class _ValueIndex:
    """Learned plaintext forms and their masks, scrubbed from text in one pass.

    Indexed by each form's first ``SCRUB_MIN_LEN`` characters, so a scrub costs one
    dictionary look-up per character of the text whatever the number of values
    (a regular expression of 50,000 alternatives tries each at every position).
    Bounded: the oldest learned form goes first. Thread-safe."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._masks: OrderedDict[str, str] = OrderedDict()
        self._by_prefix: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def add(self, form: str, mask: str) -> None:
        if len(form) < SCRUB_MIN_LEN or is_mask(form):
            return
        with self._lock:
            if form in self._masks:
                self._masks[form] = mask
                self._masks.move_to_end(form)
                return
            self._masks[form] = mask
            bucket = self._by_prefix.setdefault(form[:SCRUB_MIN_LEN], [])
            bucket.append(form)
            # longest first, so a value wins over a shorter one it starts with
            bucket.sort(key=len, reverse=True)
            while len(self._masks) > self.maxsize:
                old, _ = self._masks.popitem(last=False)
                prefix = old[:SCRUB_MIN_LEN]
                rest = [f for f in self._by_prefix.get(prefix, ()) if f != old]
                if rest:
                    self._by_prefix[prefix] = rest
                else:
                    self._by_prefix.pop(prefix, None)

    def scrub(self, text: str) -> str:
        if len(text) < SCRUB_MIN_LEN:
            return text
        with self._lock:
            if not self._masks:
                return text
            by_prefix, masks = self._by_prefix, self._masks
            out: list[str] = []
            start = i = 0
            end = len(text) - SCRUB_MIN_LEN + 1
            while i < end:
                bucket = by_prefix.get(text[i : i + SCRUB_MIN_LEN])
                if bucket is not None:
                    for form in bucket:
                        if text.startswith(form, i):
                            out.append(text[start:i])
                            out.append(masks[form])
                            i += len(form)
                            start = i
                            break
                    else:
                        i += 1
                else:
                    i += 1
        if not out:
            return text
        out.append(text[start:])
        return "".join(out)

    def __len__(self) -> int:
        return len(self._masks)


_REGISTRY = _ValueIndex(REGISTRY_SIZE)


def _forms(plain: str | None, written: str | None = None) -> Iterator[str]:
    """The forms a value may take in free text: as is, JSON-escaped (how an API
    server or a tool quotes a multi-line value) and base64 (as a Secret's ``data``
    holds it). ``written`` is the base64 as a manifest wrote it, ``plain`` None
    when those bytes are not text (then only their base64 can appear in text)."""
    if plain is not None:
        if len(plain) < SCRUB_MIN_LEN:
            return
        yield plain
        escaped = json.dumps(plain, ensure_ascii=False)[1:-1]
        if escaped != plain:
            yield escaped
        encoded = base64.b64encode(plain.encode()).decode()
        yield encoded
        if written is not None and written != encoded:
            yield written  # other padding or line breaks than the canonical form
    elif written is not None and len(written) >= 2 * SCRUB_MIN_LEN:
        yield written  # 8 base64 characters: at least 4 bytes


class Redactor:
    """The masks of one app: Secret values and the fields its rules name.

    ``app`` is a stable identity of the app (``namespace/name/uid``): it keys the
    digests, so equal values in two apps mask differently. ``rules`` are the app's
    ``spec.redactions`` and its project's, together."""

    def __init__(self, app: str, rules: Sequence[RedactRule] = ()) -> None:
        self.app = app
        self.rules = tuple(rules)
        self._key = _app_key(app)
        self._rules = tuple(_Rule(r) for r in self.rules)
        self._learned = _ValueIndex(REDACTOR_SIZE)
        # (is base64 data, value as written) -> mask: a value masked before is
        # neither digested nor learned again. Every refresh masks the same Secrets;
        # comparing an unchanged 10-key Secret took 200 us without it, 23 us with it.
        self._seen: dict[tuple[bool, str], str] = {}
        # Values decrypted from SOPS (``learn_secret_values``): a string field equal
        # to one is masked whatever its kind and path.
        self._secret_values: set[str] = set()

    def __repr__(self) -> str:
        return f"Redactor(app={self.app!r}, rules={len(self.rules)})"

    # ------------------------------------------------------------------ masks

    def mask_value(self, value: Any) -> str:
        """The mask of one value: a string by its UTF-8 bytes, ``bytes`` as they
        are, anything else by its canonical JSON."""
        if isinstance(value, str):
            return _mask_bytes(self._key, value.encode())
        if isinstance(value, bytes):
            return _mask_bytes(self._key, value)
        return _mask_bytes(self._key, _JSON_DOMAIN + _canonical(value))

    def covers(self, obj: JSONDict | None) -> bool:
        """Whether ``mask`` would touch ``obj``: a Secret, or a kind a rule names."""
        if not isinstance(obj, dict):
            return False
        if is_secret(obj):
            return True
        if self._is_list(obj):
            return any(isinstance(i, dict) and self.covers(i) for i in obj.get("items") or ())
        return bool(self._matching(obj)) or any(True for _ in self._secret_leaves(obj))

    def mask(self, obj: JSONDict | None, *, copy: bool = True) -> JSONDict | None:
        """A copy of ``obj`` with every Secret value and every field a rule names
        masked, and the fields that would carry them again (the annotation
        ``last-applied-configuration``) removed. ``copy=False`` masks ``obj`` in
        place (for a caller that already holds its own copy). Every masked value
        is learned (see ``scrub``)."""
        if obj is None:
            return None
        out = copy_json(obj) if copy else obj
        self._visit(out, replace=True)
        return out

    def learn(self, obj: JSONDict | None) -> None:
        """Remember every value ``mask`` would mask in ``obj``, without copying it,
        so that ``scrub`` can find them in free text."""
        if isinstance(obj, dict):
            self._visit(obj, replace=False)

    def learn_value(self, value: str) -> None:
        """Remember one plaintext value (a key read from elsewhere)."""
        self._remember(value, self.mask_value(value))

    def learn_secret_values(self, values: Iterable[str]) -> None:
        """Remember values that were encrypted in Git (``RenderResult.secret_values``):
        from now on ``mask`` masks every string field equal to one of them, in any
        kind and at any path but the object's identity (``apiVersion``, ``kind``,
        ``metadata.name``/``namespace``), ``covers`` is true for an object holding
        one, and ``scrub`` finds them in text. The live side of a diff holds the
        same plaintext, so it masks the same as the rendered side.

        Kept for the Redactor's life (a render after a rotation adds the new
        values; the old ones still mask what the cluster holds until it is
        synced), bounded by ``REDACTOR_SIZE``."""
        for value in values:
            if not isinstance(value, str) or not value or value in self._secret_values:
                continue
            if len(self._secret_values) >= REDACTOR_SIZE:
                self._secret_values.clear()  # bounded; the next render adds its own again
            self._secret_values.add(value)
            self._learn_any(value)

    def scrub(self, text: str) -> str:
        """``text`` with every value this Redactor learned (as is, JSON-escaped, or
        base64) replaced by its mask. Values shorter than ``SCRUB_MIN_LEN`` stay:
        see there why."""
        return self._learned.scrub(text)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _is_list(obj: JSONDict) -> bool:
        kind = obj.get("kind")
        return (
            isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list)
        )

    def _matching(self, obj: JSONDict) -> list[_Rule]:
        if not self._rules:
            return []
        group, kind = _group_of(obj), obj.get("kind")
        if not isinstance(kind, str):
            return []
        return [r for r in self._rules if r.matches(group, kind)]

    def _visit(self, obj: JSONDict, *, replace: bool) -> None:
        if self._is_list(obj):
            for item in obj["items"]:
                if isinstance(item, dict):
                    self._visit(item, replace=replace)
            return
        rules = self._matching(obj)
        secret = is_secret(obj)
        hits = list(self._secret_leaves(obj)) if self._secret_values else []
        if not (secret or rules or hits):
            return
        if secret:
            self._secret(obj, replace)
        # After the Secret's own values (a data value keeps the mask of its decoded
        # bytes, which a stringData value of the same plaintext shares).
        for container, key in hits:
            self._field(container, key, replace)
        for rule in rules:
            for path in rule.paths:
                for container, key, at in list(path.walk(obj)):
                    if at in _IDENTITY:
                        continue
                    self._field(container, key, replace)
        if replace:
            meta = obj.get("metadata")
            annotations = meta.get("annotations") if isinstance(meta, dict) else None
            if (
                isinstance(meta, dict)
                and isinstance(annotations, dict)
                and LAST_APPLIED in annotations
            ):
                del annotations[LAST_APPLIED]
                if not annotations:
                    del meta["annotations"]

    def _secret_leaves(self, obj: JSONDict) -> Iterator[tuple[Any, Any]]:
        """Each (container, key) of a string leaf of ``obj`` equal to a value
        ``learn_secret_values`` learned, outside the object's identity and labels."""
        values = self._secret_values
        if not values:
            return
        for key, value in obj.items():
            if key in ("apiVersion", "kind"):
                continue
            if key == "metadata" and isinstance(value, dict):
                for mkey, mvalue in value.items():
                    # Not the identity, nor labels: labels name and select objects
                    # (a selector copies them), and a decrypted value that equals
                    # one (an app's name as its database user) would mask what
                    # the object is in every view. Annotations may carry values.
                    if mkey in ("name", "namespace", "labels"):
                        continue
                    if isinstance(mvalue, str):
                        if mvalue in values:
                            yield value, mkey
                    else:
                        yield from _string_leaves(mvalue, values)
            elif isinstance(value, str):
                if value in values:
                    yield obj, key
            else:
                yield from _string_leaves(value, values)

    def _secret(self, obj: JSONDict, replace: bool) -> None:
        data = obj.get("data")
        if isinstance(data, dict):
            for key, value in data.items():
                if value is None or is_mask(value):
                    continue
                mask = self._data_value(value) if isinstance(value, str) else self._learn_any(value)
                if replace:
                    data[key] = mask
        string_data = obj.get("stringData")
        if isinstance(string_data, dict):
            for key, value in string_data.items():
                if value is None or is_mask(value):
                    continue
                mask = self._learn_any(value)
                if replace:
                    string_data[key] = mask

    def _data_value(self, value: str) -> str:
        """A ``data`` value: base64 of the bytes that are digested."""
        seen = self._seen.get((True, value))
        if seen is not None:
            return seen
        try:
            raw = base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            # Not base64 (the API server would refuse it): digest it as written.
            return self._learn_any(value)
        mask = _mask_bytes(self._key, raw)
        try:
            plain: str | None = raw.decode()
        except UnicodeDecodeError:
            plain = None
        for form in _forms(plain, value):
            self._remember(form, mask)
        self._memo((True, value), mask)
        return mask

    def _field(self, container: Any, key: Any, replace: bool) -> None:
        value = container[key]
        if value is None or is_mask(value):
            return
        mask = self._learn_any(value)
        if replace:
            container[key] = mask

    def _learn_any(self, value: Any) -> str:
        if isinstance(value, str):
            seen = self._seen.get((False, value))
            if seen is not None:
                return seen
        mask = self.mask_value(value)
        if isinstance(value, str):
            for form in _forms(value):
                self._remember(form, mask)
            self._memo((False, value), mask)
        else:
            # Each scalar inside (a password in spec.credentials) may be echoed
            # alone by an error: learn it with its own mask.
            for leaf in _leaves(value):
                leaf_mask = self.mask_value(leaf)
                for form in _forms(leaf):
                    self._remember(form, leaf_mask)
        return mask

    def _memo(self, key: tuple[bool, str], mask: str) -> None:
        if len(self._seen) >= REDACTOR_SIZE:
            self._seen.clear()  # bounded; values seen again are learned again
        self._seen[key] = mask

    def _remember(self, form: str, mask: str) -> None:
        self._learned.add(form, mask)
        _REGISTRY.add(form, mask)


def _leaves(value: Any) -> Iterator[str]:
    return (v for v in leaves(value) if isinstance(v, str))


def _string_leaves(node: Any, values: set[str] | frozenset[str]) -> Iterator[tuple[Any, Any]]:
    """Each (container, key) under ``node`` whose value is a string in ``values``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                if value in values:
                    yield node, key
            elif isinstance(value, dict | list):
                yield from _string_leaves(value, values)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, str):
                if value in values:
                    yield node, i
            elif isinstance(value, dict | list):
                yield from _string_leaves(value, values)


def scrub_log(text: str) -> str:
    """``text`` with every value any Redactor of this process learned (the last
    ``REGISTRY_SIZE``) replaced by its mask: for the operator's own log lines (and
    a CLI process's own stderr, which only its user reads), never for text an
    app's users see. That goes through the app's ``Redactor.scrub`` (in the engine:
    ``gitmoor.engine.scrub_message``), or the scrub would tell a tenant which of
    the strings their pod prints are other apps' Secret values, and link apps by
    their masks."""
    return _REGISTRY.scrub(text)


class ScrubFilter(logging.Filter):
    """Scrubs each record's final message (and its formatted traceback) of every
    learned value, so a log line that quotes a Secret value shows its mask."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: logging reports it itself
            return True
        clean = scrub_log(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_log(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_log(record.stack_info)
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Scrub every record ``logger`` (default: the root logger) and its handlers
    emit. Idempotent.

    A logger's own filters do not see records that propagate to it from child
    loggers (``logging`` consults only the handlers' filters for those), so the
    filter goes on the logger and on each handler it has now: call this after the
    process has set up its handlers."""
    target = logger if logger is not None else logging.getLogger()
    _add_once(target.filters, target.addFilter)
    for handler in target.handlers:
        _add_once(handler.filters, handler.addFilter)


def _add_once(filters: Sequence[Any], add: Callable[[ScrubFilter], None]) -> None:
    if not any(isinstance(f, ScrubFilter) for f in filters):
        add(ScrubFilter())
