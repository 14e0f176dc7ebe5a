"""A small evaluator for Go's ``text/template``, enough for ApplicationSet templates.

Argo CD renders a ``goTemplate: true`` ApplicationSet with Go's text/template
plus the Sprig functions (less ``env``, ``expandenv`` and ``getHostByName``)
and a few of its own (``normalize``, ``slugify``, ``toYaml``, ``fromYaml``...).
gitmoor has no Go runtime, so this module reads the same syntax and runs the
subset ApplicationSet authors write; anything else is a clear error naming
the function, never a silently different result.

Syntax: text and ``{{ }}`` actions with ``{{-``/``-}}`` whitespace trimming and
``{{/* comments */}}``; pipelines (``.a.b | lower | trunc 10``); variables
(``$``, ``$x := ...``, ``$x = ...``, ``range $i, $v := ...``); ``if`` / ``else
if`` / ``else``, ``range`` (lists, maps in key order, integers) with ``else``,
``break`` and ``continue``, ``with`` / ``else with``; literals (strings, raw
strings, numbers, ``true``/``false``/``nil``); parenthesised pipelines.
Not supported: ``define``/``template``/``block`` (an ApplicationSet field is one
template), method calls.

Functions (:data:`FUNCTIONS` is the list): Go's builtins ``and or not eq ne lt
le gt ge len index slice print printf println``; Sprig's ``default empty
coalesce ternary required fail``, ``lower upper title trim trimAll trimPrefix
trimSuffix hasPrefix hasSuffix contains replace trunc substr repeat nospace cat
quote squote indent nindent splitList split join kebabcase snakecase
regexMatch regexFind regexFindAll regexReplaceAll regexReplaceAllLiteral
regexSplit regexQuoteMeta b64enc b64dec sha1sum sha256sum toString toJson toRawJson toPrettyJson fromJson``, ``list dict get set hasKey keys
values first last rest initial has uniq sortAlpha concat dig``, ``add add1 sub
mul div mod max min int int64 float64 atoi until``; Argo CD's ``normalize
slugify toYaml fromYaml fromYamlArray``.

``missingkey``: a key absent from a map prints ``<no value>`` (Go's default,
and ``invalid``/``zero`` for Argo CD's map[string]any parameters) or, with
``missingkey=error``, fails with Go's message ``map has no entry for key "k"``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

import re2  # type: ignore[import-untyped]
import yaml

from gitmoor.model.errors import UserInputError
from gitmoor.render.yamlload import load_documents

if TYPE_CHECKING:
    from collections.abc import Callable


class GoTemplateError(Exception):
    """A parse or execution error; ``str()`` is Go's wording where Go has one."""


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key yields without
    ``missingkey=error``; printed as ``<no value>``."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()

#: Limits on what one render may build, so that a hostile or careless template
#: (``repeat 1000000000``, ``range 1000000000``, ``$x = mul $x $x`` in a loop,
#: ``concat $l $l`` doubling) fails with a message instead of taking the
#: controller's memory or its event loop; Argo CD has none, but its Go ints wrap
#: at 64 bits and its controller is one goroutine per ApplicationSet, not one loop.
#: The most characters a rendered field or one value may hold (strings: their
#: length; lists and maps: their items, nested ones counted each time they appear).
MAX_SIZE = 1 << 20
#: work units one render may spend: each executed node costs 10, each function
#: result its size (so quadratic string or list building stops early)
MAX_WORK = 5_000_000
_INT64 = 1 << 64


# ---------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
        |(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str


def _lex_action(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(src):
        m = _TOKEN.match(src, i)
        if m is None:
            raise GoTemplateError(f"unexpected {src[i]!r} in action {src.strip()!r}")
        kind = m.lastgroup or ""
        text = m.group()
        if kind != "ws":
            toks.append(_Tok(kind, text))
        else:
            toks.append(_Tok("ws", " "))
        i = m.end()
    return toks


# ---------------------------------------------------------------- nodes


@dataclass
class _Text:
    text: str


@dataclass
class _Cmd:
    args: list[Any]  # operand nodes


@dataclass
class _Pipe:
    decls: list[str]
    assign: bool
    cmds: list[_Cmd]
    source: str = ""


@dataclass
class _Action:
    pipe: _Pipe


@dataclass
class _Branch:
    kind: str  # if | with | range
    pipe: _Pipe
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _Control:
    kind: str  # break | continue


# operands
@dataclass
class _Lit:
    value: Any


@dataclass
class _Field:
    base: Any  # None: dot
    names: list[str]


@dataclass
class _Var:
    name: str
    names: list[str]


@dataclass
class _Func:
    name: str


@dataclass
class _Sub:
    pipe: _Pipe
    names: list[str]


# ---------------------------------------------------------------- parser

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_KEYWORDS = {
    "if",
    "else",
    "end",
    "range",
    "with",
    "break",
    "continue",
    "define",
    "template",
    "block",
}


def _split(src: str) -> list[tuple[str, str]]:
    """(kind, text) pieces: ("text", ...) and ("action", ...), trims applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        out.append(("text", text))
        body = m.group(2)
        out.append(("action", body))
        pos = m.end()
        if m.group(3):
            rest = src[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    if "{{" in src[pos:]:
        raise GoTemplateError("unclosed action")
    out.append(("text", src[pos:]))
    return [p for p in out if p != ("text", "")]


class _Parser:
    def __init__(self, src: str) -> None:
        self.pieces = _split(src)
        self.i = 0

    def parse(self) -> list[Any]:
        nodes, end = self._list(top=True)
        if end is not None:
            raise GoTemplateError(f"unexpected {{{{{end}}}}}")
        return nodes

    def _list(self, *, top: bool = False) -> tuple[list[Any], str | None]:
        """Nodes up to an ``end`` / ``else ...`` action, which is returned."""
        nodes: list[Any] = []
        while self.i < len(self.pieces):
            kind, text = self.pieces[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(_Text(text))
                continue
            body = text.strip()
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise GoTemplateError("unclosed comment")
                continue
            word = re.match(r"[A-Za-z_]+", body)
            kw = word.group() if word and word.group() in _KEYWORDS else ""
            if kw in ("end", "else"):
                if top:
                    raise GoTemplateError(f"unexpected {{{{{kw}}}}}")
                return nodes, body
            if kw in ("if", "with", "range"):
                nodes.append(self._branch(kw, body[len(kw) :]))
            elif kw in ("break", "continue"):
                nodes.append(_Control(kw))
            elif kw:
                raise GoTemplateError(f"{{{{{kw}}}}} is not supported in an ApplicationSet field")
            else:
                nodes.append(_Action(_parse_pipe(body)))
        if top:
            return nodes, None
        raise GoTemplateError("unexpected EOF: an {{if}}, {{range}} or {{with}} has no {{end}}")

    def _branch(self, kind: str, rest: str) -> _Branch:
        node = _Branch(kind, _parse_pipe(rest, decl_ok=True), [])
        node.body, end = self._list()
        if end is None:
            raise GoTemplateError(f"{{{{{kind}}}}} has no {{{{end}}}}")
        if end == "end":
            return node
        tail = end[len("else") :].strip()
        if not tail:
            node.orelse, end = self._list()
            if end != "end":
                raise GoTemplateError(f"expected {{{{end}}}} after {{{{else}}}}, got {{{{{end}}}}}")
            return node
        word = re.match(r"(if|with)\b", tail)
        if word is None or (kind == "range"):
            raise GoTemplateError(f"unexpected {{{{else {tail}}}}}")
        # `else if` / `else with` chain: one nested branch sharing the same {{end}}.
        node.orelse = [self._branch(word.group(1), tail[len(word.group(1)) :])]
        return node


def _parse_pipe(src: str, *, decl_ok: bool = True) -> _Pipe:
    toks = [t for t in _lex_action(src)]
    pos = 0

    def skip_ws() -> None:
        nonlocal pos
        while pos < len(toks) and toks[pos].kind == "ws":
            pos += 1

    # declarations: `$x :=`, `$i, $v :=`, `$x =`
    decls: list[str] = []
    assign = False
    skip_ws()
    look = [t for t in toks[pos:] if t.kind != "ws"]
    if decl_ok and look and look[0].kind == "var":
        if len(look) > 1 and look[1].kind in ("decl", "assign"):
            decls = [look[0].text]
            assign = look[1].kind == "assign"
            pos = toks.index(look[1], pos) + 1
        elif (
            len(look) > 3
            and look[1].kind == "comma"
            and look[2].kind == "var"
            and look[3].kind in ("decl", "assign")
        ):
            decls = [look[0].text, look[2].text]
            assign = look[3].kind == "assign"
            pos = toks.index(look[3], pos) + 1
    pipe, pos = _parse_cmds(toks, pos, src)
    pipe.decls, pipe.assign = decls, assign
    skip_ws()
    if pos != len(toks):
        raise GoTemplateError(f"unexpected {toks[pos].text!r} in {src.strip()!r}")
    if not pipe.cmds:
        raise GoTemplateError(f"missing value in {src.strip()!r}")
    return pipe


def _parse_cmds(toks: list[_Tok], pos: int, src: str) -> tuple[_Pipe, int]:
    cmds: list[_Cmd] = []
    args: list[Any] = []
    n = len(toks)
    while pos < n:
        t = toks[pos]
        if t.kind == "ws":
            pos += 1
            continue
        if t.kind == "rparen":
            break
        if t.kind == "pipe":
            if not args:
                raise GoTemplateError(f"missing command before | in {src.strip()!r}")
            cmds.append(_Cmd(args))
            args = []
            pos += 1
            continue
        operand, pos = _parse_operand(toks, pos, src)
        args.append(operand)
    if args:
        cmds.append(_Cmd(args))
    elif cmds:
        raise GoTemplateError(f"missing command after | in {src.strip()!r}")
    return _Pipe([], False, cmds, src.strip()), pos


def _trailing_fields(toks: list[_Tok], pos: int) -> tuple[list[str], int]:
    names: list[str] = []
    while pos < len(toks) and toks[pos].kind == "field":
        names += toks[pos].text.split(".")[1:]
        pos += 1
    return names, pos


def _parse_operand(toks: list[_Tok], pos: int, src: str) -> tuple[Any, int]:
    t = toks[pos]
    pos += 1
    if t.kind == "field":
        return _Field(None, t.text.split(".")[1:]), pos
    if t.kind == "dot":
        return _Field(None, []), pos
    if t.kind == "var":
        names, pos = _trailing_fields(toks, pos)
        return _Var(t.text, names), pos
    if t.kind == "string":
        return _Lit(_unquote(t.text)), pos
    if t.kind == "raw":
        return _Lit(t.text[1:-1]), pos
    if t.kind == "char":
        return _Lit(ord(_unquote('"' + t.text[1:-1] + '"'))), pos
    if t.kind == "number":
        return _Lit(_number(t.text)), pos
    if t.kind == "ident":
        if t.text in ("true", "false"):
            return _Lit(t.text == "true"), pos
        if t.text == "nil":
            return _Lit(None), pos
        return _Func(t.text), pos
    if t.kind == "lparen":
        pipe, pos = _parse_cmds(toks, pos, src)
        if pos >= len(toks) or toks[pos].kind != "rparen":
            raise GoTemplateError(f"unclosed left paren in {src.strip()!r}")
        names, pos = _trailing_fields(toks, pos + 1)
        return _Sub(pipe, names), pos
    raise GoTemplateError(f"unexpected {t.text!r} in {src.strip()!r}")


def _unquote(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # Go escapes JSON lacks (\x41, \a, \v, octal): let Python read them.
        try:
            value = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError as e:
            raise GoTemplateError(f"bad string {text}") from e
    return str(value)


def _number(text: str) -> int | float:
    clean = text.replace("_", "")
    try:
        if re.fullmatch(r"[-+]?0[xXbBoO].*", clean):
            return int(clean, 0)
        if re.fullmatch(r"[-+]?\d+", clean):
            return int(clean)
        value = float(clean)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    except ValueError as e:
        raise GoTemplateError(f"bad number syntax: {text!r}") from e


# ---------------------------------------------------------------- values


def go_str(value: Any) -> str:
    """How Go's fmt ``%v`` prints a template value (what an action writes)."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + _bounded_join(" ", (go_str(v) for v in value)) + "]"
    if isinstance(value, dict):
        pieces = (f"{k}:{go_str(value[k])}" for k in sorted(value))
        return "map[" + _bounded_join(" ", pieces) + "]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT64:
        # Wider than Go's integers: a YAML/JSON number that size is a float64 in
        # Argo CD (and Python refuses to print an int past 4300 digits).
        try:
            return go_str(float(value))
        except OverflowError as e:
            raise GoTemplateError("number out of range") from e
    return str(value)


def _bounded_join(sep: str, pieces: Any) -> str:
    """``sep.join(pieces)``, refused once it would pass :data:`MAX_SIZE` (a list
    holding one large string a million times prints as a terabyte)."""
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece) + len(sep)
        if size > MAX_SIZE:
            raise GoTemplateError(f"value larger than {MAX_SIZE} characters")
        out.append(piece)
    return sep.join(out)


def _size(value: Any, limit: int = MAX_SIZE) -> int:
    """How big ``value`` is (characters of strings, one per item of lists and maps,
    shared and cyclic parts counted each time they are met), stopping past ``limit``."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, (list, tuple)):
            total += len(v) + 1
            stack.extend(v)
        elif isinstance(v, dict):
            total += len(v) + 1
            stack.extend(v.keys())
            stack.extend(v.values())
        else:
            total += 1
    return total


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil, and empty strings/lists/maps are false."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def _type_name(value: Any) -> str:
    if value is None or value is NO_VALUE:
        return "nil"
    return {
        bool: "bool",
        int: "int",
        float: "float64",
        str: "string",
        list: "[]interface {}",
        dict: "map[string]interface {}",
    }.get(type(value), type(value).__name__)


# ---------------------------------------------------------------- functions


def _num(v: Any, fn: str) -> int | float:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return 0
    if v is None or v is NO_VALUE:
        return 0
    raise GoTemplateError(f"error calling {fn}: cannot use {_type_name(v)} as a number")


def _int(v: Any) -> int:
    """Go's int64: a non-finite float is 0, anything wider wraps (as Go's
    arithmetic does), so no loop of ``mul`` grows a number without end."""
    n = _num(v, "int")
    if isinstance(n, float) and not math.isfinite(n):
        return 0
    return _i64(int(n))


def _i64(n: int) -> int:
    return (n + (1 << 63)) % _INT64 - (1 << 63)


def _mul(*args: Any) -> int:
    out = 1
    for a in args:
        out = _i64(out * _int(a))
    return out


def _repeat(n: Any, s: Any) -> str:
    text, count = go_str(s), max(_int(n), 0)
    if count * len(text) > MAX_SIZE:
        raise GoTemplateError(f"error calling repeat: result larger than {MAX_SIZE} characters")
    return text * count


def _until(n: Any) -> list[int]:
    # Sprig's until counts down for a negative count (untilStep(0, n, -1)).
    count = _int(n)
    if abs(count) > MAX_SIZE:
        raise GoTemplateError(f"error calling until: more than {MAX_SIZE} items")
    return list(range(0, count, 1 if count >= 0 else -1))


def _empty(v: Any) -> bool:
    return not truth(v)


def _default(d: Any, *given: Any) -> Any:
    if not given or _empty(given[0]):
        return d
    return given[0]


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise GoTemplateError("error calling eq: missing argument for comparison")
    a = None if a is NO_VALUE else a
    for b in bs:
        b = None if b is NO_VALUE else b
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
            raise GoTemplateError("error calling eq: incompatible types for comparison")
        if a == b and (isinstance(a, bool) == isinstance(b, bool)):
            return True
    return False


def _cmp(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def f(a: Any, b: Any) -> bool:
        ok_num = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
        if not (ok_num or (isinstance(a, str) and isinstance(b, str))):
            raise GoTemplateError(f"error calling {name}: incompatible types for comparison")
        return op(a, b)

    return f


def _index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(item, dict):
            item = item.get(k) if k in item else None
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise GoTemplateError(f"error calling index: cannot index slice with {k!r}")
            if not 0 <= k < len(item):
                raise GoTemplateError(f"error calling index: index out of range: {k}")
            item = item[k] if not isinstance(item, str) else ord(item[k])
        elif item is None or item is NO_VALUE:
            raise GoTemplateError("error calling index: index of untyped nil")
        else:
            raise GoTemplateError(
                f"error calling index: can't index item of type {_type_name(item)}"
            )
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (list, str)):
        raise GoTemplateError(f"error calling slice: can't slice item of type {_type_name(item)}")
    ints = [_int(i) for i in idx]
    return item[slice(*ints[:2])] if ints else item


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    pos = 0
    ai = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[ai]
        ai += 1
        if (width and width != "*" and int(width) > MAX_SIZE) or (prec and int(prec) > MAX_SIZE):
            raise GoTemplateError(f"error calling printf: width or precision over {MAX_SIZE}")
        spec = "%" + flags + (width or "") + (f".{prec}" if prec is not None else "")
        if verb in ("v", "s"):
            out.append((spec + "s") % go_str(a))
        elif verb == "q":
            out.append((spec + "s") % json.dumps(go_str(a)))
        elif verb == "t":
            out.append((spec + "s") % go_str(bool(a) if isinstance(a, bool) else a))
        elif verb in ("d", "x", "X", "o", "b") and isinstance(a, (int, float)):
            v = int(a)
            out.append(
                format(v, flags.replace("#", "") + (width or "") + verb)
                if verb == "b"
                else (spec + verb) % v
            )
        elif verb in ("x", "X") and isinstance(a, str):
            out.append(a.encode().hex() if verb == "x" else a.encode().hex().upper())
        elif verb in ("f", "F", "e", "E", "g", "G") and isinstance(a, (int, float)):
            out.append((spec + verb) % a)
        else:
            out.append(f"%!{verb}({_type_name(a)}={go_str(a)})")
    out.append(fmt[pos:])
    if ai < len(args):
        out.append("%!(EXTRA " + ", ".join(f"{_type_name(a)}={go_str(a)}" for a in args[ai:]) + ")")
    return "".join(out)


def _print(*args: Any) -> str:
    # fmt.Sprint: a space between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(a)
    return out


def _trunc(n: Any, s: Any) -> str:
    text, count = go_str(s), _int(n)
    if count < 0:
        return text[max(len(text) + count, 0) :]
    return text[:count]


def _substr(start: Any, end: Any, s: Any) -> str:
    text, a, b = go_str(s), _int(start), _int(end)
    if a < 0:
        return text[:b]
    if b < 0 or b > len(text):
        return text[a:]
    return text[a:b]


def _quote(*args: Any) -> str:
    return " ".join(json.dumps(go_str(a)) for a in args if a is not None)


def _squote(*args: Any) -> str:
    return " ".join(f"'{go_str(a)}'" for a in args if a is not None)


def _indent(n: Any, s: Any) -> str:
    text, count = go_str(s), max(_int(n), 0)
    if count * (text.count("\n") + 1) + len(text) > MAX_SIZE:
        raise GoTemplateError(f"error calling indent: result larger than {MAX_SIZE} characters")
    pad = " " * count
    return pad + text.replace("\n", "\n" + pad)


def _strlist(v: Any) -> list[Any]:
    if isinstance(v, (list, tuple)):
        return list(v)
    if v is None or v is NO_VALUE:
        return []
    return [v]


def _join(sep: Any, v: Any) -> str:
    return _bounded_join(go_str(sep), (go_str(x) for x in _strlist(v)))


def _split_dict(sep: Any, s: Any) -> dict[str, str]:
    return {f"_{i}": p for i, p in enumerate(go_str(s).split(go_str(sep)))}


def _words(s: str) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", s)
    return [w for w in re.split(r"[^A-Za-z0-9]+", s) if w]


def normalize(name: Any) -> str:
    """Argo CD's ``SanitizeName`` (the ``normalize`` function, ``nameNormalized``,
    ``path.basenameNormalized``): lower case, every character outside
    ``[-a-z0-9.]`` becomes ``-``, at most 253 characters, no ``-``/``.`` at the ends."""
    s = re.sub(r"[^-a-z0-9.]", "-", go_str(name).lower())[:253]
    return s.strip("-.")


def _slugify(*args: Any) -> str:
    """Argo CD's ``slugify [maxSize] [smartTruncate] words...``: words joined
    with ``-``, lower case, runs of other characters as one ``-``, cut to
    maxSize (default 50), at a ``-`` when smartTruncate (default true)."""
    rest = list(args)
    size, smart = 50, True
    if rest and isinstance(rest[0], int) and not isinstance(rest[0], bool):
        size = rest.pop(0)
    if rest and isinstance(rest[0], bool):
        smart = rest.pop(0)
    s = "-".join(go_str(a) for a in rest).lower()
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    if len(s) > size:
        cut = s[:size]
        if smart and "-" in cut and s[size] != "-":
            cut = cut[: cut.rfind("-")]
        s = cut.strip("-")
    return s


def _to_yaml(v: Any) -> str:
    if v is NO_VALUE:
        v = None
    return str(yaml.safe_dump(v, default_flow_style=False, sort_keys=True)).removesuffix("\n")


def _load_yaml(s: Any) -> Any:
    """The first document, through gitmoor's strict loader: its node budget
    refuses an alias bomb, which PyYAML would load as shared references for
    ``toJson`` to expand (go-yaml: "excessive aliasing")."""
    docs = load_documents(go_str(s), where="fromYaml")
    return docs[0].data if docs else None


def _from_yaml(s: Any) -> Any:
    try:
        value = _load_yaml(s)
    except UserInputError as e:
        return {"Error": str(e)}
    return value if isinstance(value, dict) else {}


def _from_yaml_array(s: Any) -> Any:
    try:
        value = _load_yaml(s)
    except UserInputError as e:
        return [str(e)]
    return value if isinstance(value, list) else []


def _to_json(v: Any, *, indent: int | None = None) -> str:
    if v is NO_VALUE:
        v = None
    return json.dumps(v, indent=indent, sort_keys=True, separators=None if indent else (",", ":"))


def _from_json(s: Any) -> Any:
    try:
        return json.loads(go_str(s))
    except json.JSONDecodeError:
        return {}


def _dict(*kv: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(kv), 2):
        out[go_str(kv[i])] = kv[i + 1] if i + 1 < len(kv) else ""
    return out


def _get(d: Any, k: Any) -> Any:
    return d.get(go_str(k), "") if isinstance(d, dict) else ""


def _set(d: Any, k: Any, v: Any) -> Any:
    if not isinstance(d, dict):
        raise GoTemplateError("error calling set: not a dict")
    d[go_str(k)] = v
    return d


def _dig(*args: Any) -> Any:
    if len(args) < 3:
        raise GoTemplateError("error calling dig: needs keys, a default and a dict")
    *keys, default, d = args
    cur = d
    for k in keys:
        if not isinstance(cur, dict) or go_str(k) not in cur:
            return default
        cur = cur[go_str(k)]
    return cur


def _required(msg: Any, v: Any) -> Any:
    if v is None or v is NO_VALUE or (isinstance(v, str) and not v):
        raise GoTemplateError(go_str(msg))
    return v


def _fail(msg: Any) -> Any:
    raise GoTemplateError(go_str(msg))


def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v)
    raise GoTemplateError(f"error calling len: len of type {_type_name(v)}")


def _div(a: Any, b: Any) -> int:
    x, y = _int(a), _int(b)
    if y == 0:
        raise GoTemplateError("error calling div: integer divide by zero")
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def _mod(a: Any, b: Any) -> int:
    x, y = _int(a), _int(b)
    if y == 0:
        raise GoTemplateError("error calling mod: integer divide by zero")
    return x - y * _div(x, y)


# The regex functions run RE2, as Sprig's do through Go's regexp package: linear
# in the subject whatever the pattern, where Python's backtracking ``re`` takes
# seconds on ``^(a+)+$`` against 30 characters, on the event loop every
# ApplicationSet shares (a denial of service written in one template). RE2's
# syntax is Go's: ``(?P<name>)`` and ``(?<name>)``, ``\pL``, ``\z``, ``(?U)``,
# ``\Q...\E``; no lookaround or backreference (refused, as Go refuses them),
# ``$`` only at the end of the text, ``\d`` ASCII.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is a GoTemplateError, not a line on stderr


@lru_cache(maxsize=256)
def _compile_re2(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


def _regex(pattern: Any, fn: str) -> Any:
    """``pattern`` compiled by RE2; a pattern Go's regexp refuses fails the call
    (Sprig's ``regexp.MustCompile``: the template stops with the parse error)."""
    text = go_str(pattern)
    if _any_byte(text):
        # RE2's \C (one byte, splitting a UTF-8 character): Go has no such escape.
        raise GoTemplateError(
            f"error calling {fn}: error parsing regexp: invalid escape sequence: `\\C`"
        )
    try:
        return _compile_re2(text)
    except re2.error as e:
        detail = e.args[0] if e.args else e
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise GoTemplateError(f"error calling {fn}: error parsing regexp: {detail}") from e


def _any_byte(pattern: str) -> bool:
    i = pattern.find("\\")
    while i != -1:
        if pattern[i + 1 : i + 2] == "C":
            return True
        i = pattern.find("\\", i + 2)
    return False


def _go_matches(rx: Any, s: str, n: int = -1) -> list[Any]:
    """Go's ``FindAll`` (``n`` < 0: every match): an empty match right where the
    previous match ended is skipped, which Python's ``finditer`` (since 3.7)
    yields, so ``x*`` against ``abxd`` finds 5 matches as in Go, not 6."""
    out: list[Any] = []
    prev_end = -1
    for m in rx.finditer(s):
        if 0 <= n <= len(out):
            break
        if m.start() == m.end() == prev_end:
            continue
        prev_end = m.end()
        out.append(m)
    return out


def _go_replace(pattern: Any, s: Any, fn: str, replacement: Callable[[Any], str]) -> str:
    """Go's ``ReplaceAllString``/``ReplaceAllLiteralString``: each of the matches
    :func:`_go_matches` finds, replaced."""
    text = go_str(s)
    parts: list[str] = []
    last = 0
    for m in _go_matches(_regex(pattern, fn), text):
        parts += [text[last : m.start()], replacement(m)]
        last = m.end()
    parts.append(text[last:])
    return "".join(parts)


def _regex_split(pattern: Any, s: Any, n: Any) -> list[str]:
    """Go's ``Regexp.Split``: ``n`` < 0 all pieces, 0 none, else at most ``n``
    (the last holding the rest); capture groups are not spliced in, as
    Python's ``split`` would."""
    rx, text, limit = _regex(pattern, "regexSplit"), go_str(s), _int(n)
    if limit == 0:
        return []
    if rx.pattern and not text:
        return [""]
    pieces: list[str] = []
    begin = end = 0
    for m in _go_matches(rx, text, limit):
        if limit > 0 and len(pieces) == limit - 1:
            break
        end = m.start()
        if m.end() != 0:
            pieces.append(text[begin:end])
        begin = m.end()
    if end != len(text):
        pieces.append(text[begin:])
    return pieces


def _quote_meta(s: Any) -> str:
    """Go's ``regexp.QuoteMeta``: a backslash before each of ``\\.+*?()|[]{}^$``."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$" else c for c in go_str(s))


_EXPAND = re.compile(r"\$(?:(\$)|\{(\w+)\}|(\w+))")


def _go_expand(template: str, m: Any) -> str:
    """Go's ``Regexp.Expand`` (what ``regexReplaceAll`` does with its replacement):
    ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; a group that does not exist
    or did not match is empty, and a backslash is just a backslash (Python's own
    template syntax would read ``\\p`` as a bad escape and raise)."""

    def one(e: re.Match[str]) -> str:
        if e.group(1):
            return "$"
        name = e.group(2) or e.group(3)
        if name.isdigit():
            index = int(name)
            return (m.group(index) or "") if index <= (m.re.groups or 0) else ""
        return (m.group(name) or "") if name in m.re.groupindex else ""

    return _EXPAND.sub(one, template)


def _b64dec(s: Any) -> str:
    try:
        return base64.b64decode(go_str(s), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as e:
        return str(e)


def _uniq(v: Any) -> list[Any]:
    out: list[Any] = []
    for x in _strlist(v):
        if x not in out:
            out.append(x)
    return out


FUNCTIONS: dict[str, Callable[..., Any]] = {
    # Go's builtins (and/or/not are handled lazily by the evaluator, as Go does)
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _cmp("lt", lambda a, b: a < b),
    "le": _cmp("le", lambda a, b: a <= b),
    "gt": _cmp("gt", lambda a, b: a > b),
    "ge": _cmp("ge", lambda a, b: a >= b),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _print,
    "printf": lambda fmt, *a: _printf(go_str(fmt), *a),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    # Sprig: defaults and flow
    "default": _default,
    "empty": _empty,
    "coalesce": lambda *a: next((x for x in a if truth(x)), None),
    "ternary": lambda a, b, c: a if truth(c) else b,
    "required": _required,
    "fail": _fail,
    # Sprig: strings
    "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(),
    "title": lambda s: re.sub(r"\b[a-z]", lambda m: m.group().upper(), go_str(s)),
    "trim": lambda s: go_str(s).strip(),
    "trimAll": lambda cut, s: go_str(s).strip(go_str(cut)),
    "trimPrefix": lambda p, s: go_str(s).removeprefix(go_str(p)),
    "trimSuffix": lambda p, s: go_str(s).removesuffix(go_str(p)),
    "hasPrefix": lambda p, s: go_str(s).startswith(go_str(p)),
    "hasSuffix": lambda p, s: go_str(s).endswith(go_str(p)),
    "contains": lambda sub, s: go_str(sub) in go_str(s),
    "replace": lambda old, new, s: go_str(s).replace(go_str(old), go_str(new)),
    "trunc": _trunc,
    "substr": _substr,
    "repeat": _repeat,
    "nospace": lambda s: re.sub(r"\s+", "", go_str(s)),
    "cat": lambda *a: " ".join(go_str(x) for x in a if x is not None),
    "quote": _quote,
    "squote": _squote,
    "indent": _indent,
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "splitList": lambda sep, s: go_str(s).split(go_str(sep)),
    "split": _split_dict,
    "join": _join,
    "kebabcase": lambda s: "-".join(w.lower() for w in _words(go_str(s))),
    "snakecase": lambda s: "_".join(w.lower() for w in _words(go_str(s))),
    "regexMatch": lambda r, s: _regex(r, "regexMatch").search(go_str(s)) is not None,
    "regexFind": lambda r, s: (lambda m: m.group() if m else "")(
        _regex(r, "regexFind").search(go_str(s))
    ),
    "regexFindAll": lambda r, s, n: [
        m.group() for m in _go_matches(_regex(r, "regexFindAll"), go_str(s), _int(n))
    ],
    "regexReplaceAll": lambda r, s, repl: _go_replace(
        r, s, "regexReplaceAll", partial(_go_expand, go_str(repl))
    ),
    "regexReplaceAllLiteral": lambda r, s, repl: _go_replace(
        r, s, "regexReplaceAllLiteral", lambda _m: go_str(repl)
    ),
    "regexSplit": _regex_split,
    "regexQuoteMeta": _quote_meta,
    "b64enc": lambda s: base64.b64encode(go_str(s).encode()).decode(),
    "b64dec": _b64dec,
    "sha1sum": lambda s: hashlib.sha1(go_str(s).encode()).hexdigest(),  # noqa: S324
    "sha256sum": lambda s: hashlib.sha256(go_str(s).encode()).hexdigest(),
    "toString": go_str,
    "toJson": _to_json,
    "toRawJson": _to_json,
    "toPrettyJson": lambda v: _to_json(v, indent=2),
    "fromJson": _from_json,
    # Sprig: lists and dicts
    "list": lambda *a: list(a),
    "dict": _dict,
    "get": _get,
    "set": _set,
    "hasKey": lambda d, k: isinstance(d, dict) and go_str(k) in d,
    "keys": lambda *ds: [k for d in ds if isinstance(d, dict) for k in d],
    "values": lambda d: list(d.values()) if isinstance(d, dict) else [],
    "first": lambda v: _strlist(v)[0] if _strlist(v) else None,
    "last": lambda v: _strlist(v)[-1] if _strlist(v) else None,
    "rest": lambda v: _strlist(v)[1:],
    "initial": lambda v: _strlist(v)[:-1],
    "has": lambda x, v: x in _strlist(v),
    "uniq": _uniq,
    "sortAlpha": lambda v: sorted(go_str(x) for x in _strlist(v)),
    "concat": lambda *vs: [x for v in vs for x in _strlist(v)],
    "dig": _dig,
    # Sprig: numbers
    "add": lambda *a: _i64(sum(_int(x) for x in a)),
    "add1": lambda a: _i64(_int(a) + 1),
    "sub": lambda a, b: _i64(_int(a) - _int(b)),
    "mul": _mul,
    "div": _div,
    "mod": _mod,
    "max": lambda *a: max(_int(x) for x in a),
    "min": lambda *a: min(_int(x) for x in a),
    "int": _int,
    "int64": _int,
    "float64": lambda v: float(_num(v, "float64")),
    "atoi": lambda s: int(s) if re.fullmatch(r"[-+]?\d+", go_str(s)) else 0,
    "until": _until,
    # Argo CD's own
    "normalize": normalize,
    "slugify": _slugify,
    "toYaml": _to_yaml,
    "fromYaml": _from_yaml,
    "fromYamlArray": _from_yaml_array,
}
_LAZY = ("and", "or", "not")
#: functions that hand back (part of) a value they were given rather than build
#: one: not measured against MAX_SIZE nor charged its size (a template may index
#: a large parameter in a loop)
_LOOKUPS = frozenset(
    {"index", "get", "dig", "first", "last", "default", "coalesce", "ternary", "set", "required"}
)


# ---------------------------------------------------------------- evaluator


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, missingkey: str) -> None:
        self.missingkey = missingkey
        self.scopes: list[dict[str, Any]] = []
        self.work = 0
        self.written = 0

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise GoTemplateError(
                "template does too much work (a range over too many items, or a value "
                "built up in a loop)"
            )

    # variables --------------------------------------------------------
    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise GoTemplateError(f'undefined variable "{name}"')

    def assign(self, name: str, value: Any) -> None:
        for scope in reversed(self.scopes):
            if name in scope:
                scope[name] = value
                return
        raise GoTemplateError(f'undefined variable "{name}"')

    # nodes ------------------------------------------------------------
    def run(self, nodes: list[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            self.spend(10)
            if isinstance(node, _Text):
                self.write(node.text, out)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decls:
                    self.write(go_str(value), out)
            elif isinstance(node, _Branch):
                self.branch(node, dot, out)
            elif node.kind == "break":
                raise _Break
            else:
                raise _Continue

    def write(self, text: str, out: list[str]) -> None:
        self.written += len(text)
        if self.written > MAX_SIZE:
            raise GoTemplateError(f"rendered text larger than {MAX_SIZE} characters")
        out.append(text)

    def branch(self, node: _Branch, dot: Any, out: list[str]) -> None:
        self.scopes.append({})
        try:
            if node.kind == "range":
                self.range(node, dot, out)
                return
            value = self.pipe(node.pipe, dot, declare_in_place=True)
            if truth(value):
                self.run(node.body, value if node.kind == "with" else dot, out)
            else:
                self.run(node.orelse, dot, out)
        finally:
            self.scopes.pop()

    def range(self, node: _Branch, dot: Any, out: list[str]) -> None:
        decls = node.pipe.decls
        value = self.pipe(_Pipe([], False, node.pipe.cmds, node.pipe.source), dot)
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if value > MAX_SIZE:
                raise GoTemplateError(f"range over {value}: more than {MAX_SIZE} iterations")
            items = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            items = []
        else:
            raise GoTemplateError(f"range can't iterate over {go_str(value)}")
        if not items:
            self.run(node.orelse, dot, out)
            return
        for k, v in items:
            scope = self.scopes[-1]
            if len(decls) == 1:
                scope[decls[0]] = v
            elif len(decls) == 2:
                scope[decls[0]], scope[decls[1]] = k, v
            try:
                self.run(node.body, v, out)
            except _Break:
                break
            except _Continue:
                continue

    # pipelines -----------------------------------------------------------
    def pipe(self, pipe: _Pipe, dot: Any, *, declare_in_place: bool = False) -> Any:
        value: Any = NO_VALUE
        first = True
        for cmd in pipe.cmds:
            value = self.cmd(cmd, dot, None if first else value, piped=not first)
            first = False
        for name in pipe.decls:
            if pipe.assign:
                self.assign(name, value)
            else:
                self.scopes[-1][name] = value
        return value

    def cmd(self, cmd: _Cmd, dot: Any, prev: Any, *, piped: bool) -> Any:
        head, args = cmd.args[0], cmd.args[1:]
        if isinstance(head, _Func):
            return self.call(head.name, args, dot, prev, piped=piped)
        if args or piped:
            raise GoTemplateError(f"can't give argument to non-function {self._describe(head)}")
        return self.operand(head, dot)

    def call(self, name: str, args: list[Any], dot: Any, prev: Any, *, piped: bool) -> Any:
        if name in _LAZY:
            thunks: list[Callable[[], Any]] = [partial(self.operand, a, dot) for a in args]
            if piped:
                thunks.append(lambda: prev)
            if name == "not":
                if len(thunks) != 1:
                    raise GoTemplateError(f"wrong number of args for not: want 1 got {len(thunks)}")
                return not truth(thunks[0]())
            if not thunks:
                raise GoTemplateError(f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for t in thunks:
                value = t()
                if truth(value) == (name == "or"):
                    return value
            return value
        fn = FUNCTIONS.get(name)
        if fn is None:
            raise GoTemplateError(f'function "{name}" not defined')
        values = [self.operand(a, dot) for a in args]
        if piped:
            values.append(prev)
        try:
            result = fn(*values)
        except GoTemplateError:
            raise
        except TypeError as e:
            raise GoTemplateError(f"wrong number of args for {name}: {len(values)} given") from e
        except (ValueError, KeyError, IndexError, AttributeError, ArithmeticError, re.error) as e:
            raise GoTemplateError(f"error calling {name}: {e}") from e
        if name in _LOOKUPS or not isinstance(result, (str, list, tuple, dict)):
            self.spend(1)
            return result
        size = _size(result)
        if size > MAX_SIZE:
            raise GoTemplateError(f"error calling {name}: result larger than {MAX_SIZE} items")
        self.spend(size)
        return result

    def operand(self, node: Any, dot: Any) -> Any:
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Field):
            return self.fields(dot, node.names)
        if isinstance(node, _Var):
            return self.fields(self.lookup(node.name), node.names)
        if isinstance(node, _Sub):
            return self.fields(self.pipe(node.pipe, dot), node.names)
        if isinstance(node, _Func):
            return self.call(node.name, [], dot, None, piped=False)
        raise GoTemplateError(f"cannot evaluate {node!r}")

    def fields(self, value: Any, names: list[str]) -> Any:
        for name in names:
            if isinstance(value, dict):
                if name in value:
                    value = value[name]
                elif self.missingkey == "error":
                    raise GoTemplateError(f'map has no entry for key "{name}"')
                else:
                    value = NO_VALUE
            elif value is NO_VALUE or value is None:
                if self.missingkey == "error":
                    raise GoTemplateError(f"nil pointer evaluating interface {{}}.{name}")
                value = NO_VALUE
            else:
                raise GoTemplateError(f"can't evaluate field {name} in type {_type_name(value)}")
        return value

    @staticmethod
    def _describe(node: Any) -> str:
        if isinstance(node, _Field):
            return "." + ".".join(node.names)
        if isinstance(node, _Var):
            return node.name + "".join("." + n for n in node.names)
        if isinstance(node, _Lit):
            return go_str(node.value)
        return "value"


_PARSED: dict[str, list[Any]] = {}


def parse(src: str) -> list[Any]:
    """The parsed template (cached: one ApplicationSet renders the same fields
    for every element)."""
    nodes = _PARSED.get(src)
    if nodes is None:
        nodes = _Parser(src).parse()
        if len(_PARSED) > 4096:
            _PARSED.clear()
        _PARSED[src] = nodes
    return nodes


def render(src: str, data: Any, *, missingkey: str = "default") -> str:
    """``src`` executed with ``data`` as dot (and ``$``); GoTemplateError on failure."""
    ex = _Exec(missingkey)
    ex.scopes.append({"$": data})
    out: list[str] = []
    try:
        nodes = parse(src)
        ex.run(nodes, data, out)
    except (_Break, _Continue) as e:
        raise GoTemplateError("{{break}} or {{continue}} outside {{range}}") from e
    except RecursionError as e:
        raise GoTemplateError("template nests too deeply") from e
    return "".join(out)
