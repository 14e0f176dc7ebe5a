"""The file formats of SOPS, as sops's stores read and write them (``stores/*``).

Each format loads into a list of branches (one per YAML document) and emits
from one; the cipher, the MAC and the metadata are :mod:`gitmoor.secrets.sopsfile`'s.

- **YAML** is typed the way sops's reader (yaml.v3) types it, because the type is
  encrypted with each value and its text is what the MAC covers: YAML 1.2
  booleans and nulls only (``yes`` stays a string), Go's integer syntax (``0o17``,
  ``0x1F``, ``017``), floats, and timestamps as Go times. Emitted as sops emits
  it: four-space indent, lists indented under their key, no line folding, any
  string another reader could take for something else quoted.
- **JSON** is one object; integers beyond 64 bits become floats, as in sops.
- **dotenv** is ``KEY=VALUE`` lines split at the first ``=``, ``\\n`` standing for
  a newline in a value, ``#`` lines comments (which sops encrypts too).
- **binary** is the whole file as the one value ``data``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import yaml

from gitmoor.secrets.sopserrors import SopsError

Format = Literal["yaml", "json", "dotenv", "binary"]
FORMATS: tuple[Format, ...] = ("yaml", "json", "dotenv", "binary")


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment line of a dotenv file (sops encrypts those too). ``n`` keeps equal
    comments apart as mapping keys."""

    text: str
    n: int = 0


# --- the tree: what each format loads into and emits from ---------------------------
#
# A branch is a dict (str or Comment keys, in file order), a list, or a scalar:
# str, int, float, bool, None. Binary bytes travel as str decoded with
# surrogateescape, so any byte sequence survives and the MAC sees the same bytes.

Branch = dict[Any, Any]


def format_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class GoTime(str):
    """A YAML timestamp as sops holds it: a Go ``time.Time``, written (and MACed, and
    encrypted with type ``time``) as ``MarshalText`` prints it (RFC 3339 with
    nanoseconds, trailing zeros dropped, ``Z`` for a zero offset)."""


_INT64 = (-(2**63), 2**63 - 1)
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:([Tt])(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?))?$"
)
_YAML_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}


def _go_timestamp(text: str) -> GoTime | None:
    """yaml.v3's ``parseTimestamp`` then Go's ``MarshalText``, or None."""
    m = _TIMESTAMP.match(text)
    if m is None:
        return None
    g = m.groups()
    if g[3]:
        clock, frac, zone = g[4:7], g[7] or "", g[8]
    elif g[9]:
        clock, frac, zone = g[9:12], g[12] or "", "Z"
    else:
        clock, frac, zone = ("0", "0", "0"), "", "Z"
    try:
        hour, minute, second = (int(c) for c in clock)
        when = dt.datetime(int(g[0]), int(g[1]), int(g[2]), hour, minute, second)
    except ValueError:
        return None
    frac = frac[:9].rstrip("0")
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return GoTime(when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + zone)


def _go_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)`` (base from the prefix, 0777 octal)."""
    m = re.fullmatch(r"([-+]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", text)
    if m is None:
        return None
    sign, digits = m.groups()
    prefix = digits[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        value = int(digits[2:], {"0x": 16, "0o": 8, "0b": 2}[prefix])
    elif digits.startswith("0") and len(digits) > 1:
        value = int(digits[1:], 8)
    else:
        value = int(digits)
    return -value if sign == "-" else value


def _go_plain_scalar(text: str) -> Any:
    """What yaml.v3's ``resolve`` makes of an untagged plain scalar, which is what
    sops encrypts and MACs: YAML 1.2 booleans and nulls only (``yes`` stays a
    string), Go's integer syntax, floats, and timestamps as Go times."""
    if text in _YAML_CONSTANTS:
        return _YAML_CONSTANTS[text]
    hint = text[:1]
    if hint == ".":
        try:
            return float(text) if _YAML_FLOAT.match(text) else text
        except ValueError:
            return text
    if hint not in ("+", "-") and not hint.isdigit():
        return text
    stamp = _go_timestamp(text)
    if stamp is not None:
        return stamp
    plain = text.replace("_", "")
    value = _go_int(plain)
    if value is not None:
        if not _INT64[0] <= value <= _INT64[1]:
            raise SopsError("an integer beyond 64 bits: sops cannot encrypt it (quote it)")
        return value
    if _YAML_FLOAT.match(plain):
        return float(plain)
    for prefix, base in (("0b", 2), ("-0b", 2), ("0o", 8), ("-0o", 8)):
        if plain.startswith(prefix) and plain[len(prefix) :]:
            try:
                return int(plain.replace(prefix, "-" if prefix[0] == "-" else "", 1), base)
            except ValueError:
                return text
    return text


_PLAIN_TAG = "tag:gitmoor.io,2026:plain"


class _MergeKey(str):
    """The mapping key ``<<`` on its way out."""


class _Loader(yaml.SafeLoader):
    """YAML read the way sops's yaml.v3 decoder types values: every untagged plain
    scalar goes through :func:`_go_plain_scalar`; quoted and block scalars are
    strings. ``<<`` is an ordinary key holding the aliased mapping: sops does not
    merge it, and the values below it are encrypted (and MACed) under ``…:<<:…``."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN_TAG
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]

    def flatten_mapping(self, node: Any) -> None:
        return None


class _Dumper(yaml.SafeDumper):
    """yaml.v3's layout as sops emits it: four-space indent, lists indented under
    their key, multi-line strings as literal blocks, no line folding."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # sops writes an alias's value out in full


def _setup_yaml() -> None:
    def construct_plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        return _go_plain_scalar(str(loader.construct_scalar(node)))  # type: ignore[arg-type]

    def construct_merge_key(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        return "<<"  # sops's output tags it `!!merge <<`; it is the key "<<"

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
        assert isinstance(node, yaml.MappingNode)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if isinstance(key, (dict, list)):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node, deep=True)

    def construct_binary(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        # yaml.v3 decodes !!binary into a string of its bytes: sops encrypts it as a str
        assert isinstance(node, yaml.ScalarNode)
        raw = loader.construct_yaml_binary(node)
        return raw.decode("utf-8", "surrogateescape")

    _Loader.add_constructor("tag:yaml.org,2002:binary", construct_binary)
    _Loader.add_constructor(_PLAIN_TAG, construct_plain)
    _Loader.add_constructor("tag:yaml.org,2002:merge", construct_merge_key)
    _Loader.add_constructor("tag:yaml.org,2002:map", construct_mapping)

    # The dumper quotes any string that either YAML 1.1 (kubectl's and PyYAML's
    # readers) or yaml.v3 would read as something else: SafeDumper's own resolvers
    # cover YAML 1.1; these add yaml.v3's integer forms and y/n, which yaml.v3 quotes.
    for tag, pattern, first in (
        ("tag:yaml.org,2002:int", r"^[-+]?0[oO][0-7_]+$", "-+0"),
        ("tag:yaml.org,2002:bool", r"^(?:y|Y|n|N)$", "yYnN"),
    ):
        _Dumper.add_implicit_resolver(tag, re.compile(pattern), list(first))

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        resolved = _go_plain_scalar_safe(value)
        if type(resolved) is not str or resolved != value:
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    def represent_time(dumper: yaml.SafeDumper, value: GoTime) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:timestamp", str(value))

    def represent_branch(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.Node:
        # sops writes the key "<<" as a merge key (`!!merge <<`): YAML readers merge it
        items = {(_MergeKey(k) if k == "<<" else k): v for k, v in value.items()}
        return dumper.represent_mapping("tag:yaml.org,2002:map", items)

    def represent_merge_key(dumper: yaml.SafeDumper, value: _MergeKey) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:merge", "<<")

    _Dumper.add_representer(str, represent_str)
    _Dumper.add_representer(dict, represent_branch)
    _Dumper.add_representer(_MergeKey, represent_merge_key)
    _Dumper.add_representer(GoTime, represent_time)


def _go_plain_scalar_safe(text: str) -> Any:
    try:
        return _go_plain_scalar(text)
    except SopsError:
        return None


_setup_yaml()


def _yaml_problem(e: yaml.YAMLError) -> str:
    """Where and what, without the snippet of the document PyYAML adds."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{e.problem or e.context or 'syntax error'}{where}"
    return type(e).__name__


def _yaml_load(data: bytes, where: str) -> list[Branch]:
    try:
        docs = list(yaml.load_all(data.decode("utf-8"), Loader=_Loader))
    except UnicodeDecodeError as e:
        raise SopsError(f"not UTF-8 text at byte {e.start}", concerns=where) from None
    except SopsError as e:
        raise SopsError(e.message, concerns=where) from None
    except yaml.YAMLError as e:
        # PyYAML's own message quotes the offending line, which may hold a secret.
        raise SopsError(f"not valid YAML: {_yaml_problem(e)}", concerns=where) from None
    branches: list[Branch] = []
    for doc in docs:
        if doc is None:
            branches.append({})
        elif isinstance(doc, dict):
            branches.append(doc)
        else:
            raise SopsError(
                "each YAML document must be a mapping (sops supports no top-level list or scalar)",
                concerns=where,
            )
    return branches


def emit_yaml(branches: list[Branch]) -> str:
    return "---\n".join(
        yaml.dump(
            b,
            Dumper=_Dumper,
            indent=4,
            sort_keys=False,
            allow_unicode=True,
            width=1_000_000,
            default_flow_style=False,
        )
        if b
        else "{}\n"
        for b in branches
    )


def _json_load(data: bytes, where: str) -> list[Branch]:
    try:
        doc = json.loads(data.decode("utf-8"), parse_int=_json_int)
    except (ValueError, UnicodeDecodeError) as e:
        raise SopsError(f"not valid JSON: {e}", concerns=where) from e
    if not isinstance(doc, dict):
        raise SopsError(
            "sops supports only JSON documents that are an object ({...})", concerns=where
        )
    return [doc]


def _json_int(text: str) -> int | float:
    """sops's ``normalizeJSONNumber``: an int within 64 bits, a float beyond."""
    value = int(text)
    return value if _INT64[0] <= value <= _INT64[1] else float(text)


def emit_json(branches: list[Branch]) -> str:
    return json.dumps(branches[0], indent="\t", ensure_ascii=False) + "\n"


def _dotenv_load(data: bytes, where: str) -> list[Branch]:
    """sops's dotenv reader: ``KEY=VALUE`` lines split at the first ``=``, ``\\n``
    unescaped, ``#`` lines kept as comments, empty lines dropped."""
    text = data.decode("utf-8", "surrogateescape")
    branch: Branch = {}
    for n, line in enumerate(text.split("\n")):
        if not line:
            continue
        if line.startswith("#"):
            branch[Comment(line[1:], n)] = None
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise SopsError(f"line {n + 1} is not KEY=VALUE", concerns=where)
        branch[key] = value.replace("\\n", "\n")
    return [branch]


def emit_dotenv(branches: list[Branch]) -> str:
    lines = []
    for k, v in branches[0].items():
        if isinstance(k, Comment):
            lines.append(f"#{k.text}\n")
            continue
        if isinstance(v, (dict, list)):
            raise SopsError(f"a dotenv file cannot hold the nested value of {k!r}")
        value = v.replace("\n", "\\n") if isinstance(v, str) else _scalar_text(v)
        lines.append(f"{k}={value}\n")
    return "".join(lines)


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format_float(v)
    return "" if v is None else str(v)


def load(data: bytes, fmt: Format, where: str) -> list[Branch]:
    if fmt == "yaml":
        return _yaml_load(data, where)
    if fmt == "json":
        return _json_load(data, where)
    if fmt == "dotenv":
        return _dotenv_load(data, where)
    return [{"data": data.decode("utf-8", "surrogateescape")}]


def emit_plain(branches: list[Branch], fmt: Format) -> bytes:
    if fmt == "yaml":
        return emit_yaml(branches).encode()
    if fmt == "json":
        return emit_json(branches).encode()
    if fmt == "dotenv":
        return emit_dotenv(branches).encode("utf-8", "surrogateescape")
    value = branches[0].get("data")
    if not isinstance(value, str):
        raise SopsError("the binary document has no string value 'data'")
    return value.encode("utf-8", "surrogateescape")


__all__ = [
    "FORMATS",
    "Branch",
    "Comment",
    "Format",
    "GoTime",
    "emit_dotenv",
    "emit_json",
    "emit_plain",
    "emit_yaml",
    "format_float",
    "load",
]
