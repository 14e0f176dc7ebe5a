"""A strict YAML loader that keeps line numbers and refuses duplicate keys.

PyYAML's safe loader silently keeps the last of two equal keys, while the Go
YAML decoder behind ``kubectl apply`` refuses them; a manifest that means
something else than it reads must fail here, naming the file and line, not
deploy half of what the author wrote.

Timestamps stay strings: Kubernetes decodes YAML into JSON, where a date is a
string, and a ``datetime`` would not survive the trip to the API server. Non-string
keys become strings for the same reason (``1: a`` is ``"1": a`` in JSON).

The limits live here, in the loader, so that no caller can ever be handed an
expansion to do (``limits`` holds the figures):

- a text longer than ``MAX_RENDER_BYTES`` characters is refused unread;
- each document's node graph is measured after composing and before any
  Python object is built: nested more than ``MAX_YAML_DEPTH`` levels (aliases
  followed), an alias that refers to its own anchor (a cycle, which no JSON can
  hold), or more nodes once aliases are expanded than
  ``max(MIN_YAML_NODES, YAML_NODES_PER_CHAR × len(text))`` is refused, naming
  the file and line. PyYAML shares an aliased node instead of copying it, so a
  1 KB "billion laughs" document loads cheaply and explodes only later, when
  the objects are copied or serialised: on the controller's event loop, for
  every app at once. Measured on the graph with memoised subtree sizes, the
  check costs one visit per distinct node, so a bomb is refused in
  milliseconds;
- libyaml's own limit (1000 levels) keeps its recursive composer off the end
  of the C stack; a ``RecursionError`` of the pure-Python loader (PyYAML built
  without libyaml) becomes the same sentence.

Speed: libyaml (``CSafeLoader``) scans, parses and composes; PyYAML's Python
constructor would then build the objects, one generator per mapping and one
dispatch per node, which took about as long as libyaml's whole parse (1,000
ConfigMap files: 0.12 s of which 0.06 s constructing). Plain mappings,
sequences and strings, nearly every node of a manifest, are built here in one
walk of the measured graph instead (``_StrictLoader.build``); every other tag
(numbers, booleans, null, timestamps, merge keys, ``!!binary``, an unknown
tag) goes through PyYAML's constructor, so its value and its refusal stay
PyYAML's. The same duplicate-key refusal applies on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from gitmoor.model import UserInputError
from gitmoor.render.limits import (
    MAX_RENDER_BYTES,
    MAX_YAML_DEPTH,
    MIN_YAML_NODES,
    YAML_NODES_PER_CHAR,
    mib,
)

if TYPE_CHECKING:
    from yaml.nodes import Node

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class Document:
    """One non-empty YAML document and the 1-based line where its content starts."""

    line: int
    data: Any
    #: id() of each mapping in ``data`` → its 1-based line, so that items of a
    #: ``kind: List`` can point at their own line rather than the list's.
    lines: dict[int, int]

    def line_of(self, obj: object) -> int:
        return self.lines.get(id(obj), self.line)


class InvalidYAML(UserInputError):
    """A ``UserInputError`` that keeps the line, for callers that map it further.

    Helm's output is one stream of many templates: its renderer turns the line
    back into the template the broken document came from.
    """

    def __init__(self, problem: str, *, where: str, line: int) -> None:
        super().__init__(f"invalid YAML: {problem}", concerns=f"{where}:{line}" if line else where)
        self.problem = problem
        self.line = line


def _json_key(key: object) -> object:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    return key


class _StrictLoader(_BaseLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.mapping_lines: dict[int, int] = {}

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            # Keys brought in by a merge (``<<: *base``) may be overridden on purpose.
            if key_node.tag == _MERGE_TAG:
                continue
            _check_duplicate(seen, self._key(key_node), key_node)
        # Built here rather than by the base class, whose dict would fold ``1``
        # and ``true`` into one key before they become the strings "1" and "true".
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            mapping[self._key(key_node)] = self.construct_object(value_node, deep=deep)
        return mapping

    def _key(self, key_node: Node) -> object:
        if key_node.__class__ is ScalarNode and key_node.tag == _STR_TAG:
            return key_node.value  # what construct_yaml_str returns, without the dispatch
        key = _json_key(self.construct_object(key_node, deep=True))
        try:
            hash(key)
        except TypeError as err:
            raise ConstructorError(
                None, None, "a mapping key must be a scalar", key_node.start_mark
            ) from err
        return key

    def construct_yaml_map(self, node: MappingNode) -> Any:
        for data in super().construct_yaml_map(node):
            self.mapping_lines[id(data)] = node.start_mark.line + 1
            yield data

    def construct_timestamp_as_string(self, node: ScalarNode) -> str:
        return self.construct_scalar(node)

    def build(self, node: Node) -> Any:
        """What ``construct_document(node)`` returns, built in one walk (module
        docstring, "Speed"). ``node`` has been measured: no cycle, at most
        ``MAX_YAML_DEPTH`` levels, so the recursion here stays shallow."""
        try:
            return self._build(node)
        finally:
            # As construct_document leaves the constructor for the next document.
            self.constructed_objects = {}
            self.recursive_objects = {}
            self.state_generators = []
            self.deep_construct = False

    def _build(self, node: Node) -> Any:
        cls, tag = node.__class__, node.tag
        if cls is ScalarNode:
            return node.value if tag == _STR_TAG else self.construct_object(node, deep=True)
        # An aliased collection is built once and shared, as PyYAML shares it;
        # constructed_objects is the memo PyYAML's own path reads too.
        built = self.constructed_objects.get(node)
        if built is not None:
            return built
        if cls is MappingNode and tag == _MAP_TAG:
            pairs = node.value
            if any(k.tag == _MERGE_TAG for k, _ in pairs):
                return self.construct_object(node, deep=True)  # flatten_mapping's rules
            # Every key is checked before any value is built, as construct_mapping
            # does, so the error a broken mapping gets does not depend on the path.
            seen: dict[object, int] = {}
            keys = []
            for key_node, _ in pairs:
                key = self._key(key_node)
                _check_duplicate(seen, key, key_node)
                keys.append(key)
            mapping: dict[Any, Any] = {}
            self.constructed_objects[node] = mapping
            self.mapping_lines[id(mapping)] = node.start_mark.line + 1
            for key, (_, value_node) in zip(keys, pairs, strict=True):
                mapping[key] = self._build(value_node)
            return mapping
        if cls is SequenceNode and tag == _SEQ_TAG:
            items: list[Any] = []
            self.constructed_objects[node] = items
            for item in node.value:
                items.append(self._build(item))
            return items
        return self.construct_object(node, deep=True)


def _check_duplicate(seen: dict[object, int], key: object, key_node: Node) -> None:
    """Refuse ``key`` when ``seen`` has it; else remember its line."""
    if key in seen:
        raise ConstructorError(
            None,
            None,
            f"duplicate key {key!r} (first defined on line {seen[key]})",
            key_node.start_mark,
        )
    seen[key] = key_node.start_mark.line + 1


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_yaml_map)
_StrictLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _StrictLoader.construct_timestamp_as_string
)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value)


def _measure(root: Node, *, allowance: int, where: str) -> int:
    """The nodes of ``root`` with every alias expanded; refuses what breaks a limit.

    Iterative (a deep document must not exhaust Python's stack here either) and
    memoised per distinct collection, so a shared subtree is measured once however
    many aliases point at it. ``allowance`` is what is left of the text's budget.
    """
    if isinstance(root, ScalarNode):
        return 1
    size: dict[int, int] = {}  # id(collection) -> expanded nodes, capped at allowance + 1
    height: dict[int, int] = {}  # id(collection) -> levels of collections from it down
    open_ids: set[int] = set()  # the collections on the current path (to find cycles)
    # (node, its level, its children once entered); scalars are counted in place.
    stack: list[tuple[Node, int, list[Node] | None]] = [(root, 1, None)]
    while stack:
        node, level, kids = stack.pop()
        key = id(node)
        if kids is not None:  # every child measured: leave the node
            open_ids.discard(key)
            total = 1
            deepest = 0
            for kid in kids:
                if kid.__class__ is ScalarNode:
                    total += 1
                else:
                    total += size[id(kid)]
                    deepest = max(deepest, height[id(kid)])
            size[key] = min(total, allowance + 1)
            height[key] = deepest + 1
            if total > allowance:
                raise _refused(
                    f"too many aliases/nodes (alias bomb?): more than {allowance:,} nodes "
                    "once aliases are expanded",
                    node,
                    where,
                )
            continue
        if key in size:  # reached again through an alias: measured already
            if level - 1 + height[key] > MAX_YAML_DEPTH:
                raise _too_deep(node, where)
            continue
        if key in open_ids:
            raise _refused("an alias refers to an anchor that contains it", node, where)
        if level > MAX_YAML_DEPTH:
            raise _too_deep(node, where)
        open_ids.add(key)
        kids = _children(node)
        stack.append((node, level, kids))
        stack.extend(
            (kid, level + 1, None) for kid in reversed(kids) if kid.__class__ is not ScalarNode
        )
    return size[id(root)]


def _refused(problem: str, node: Node, where: str) -> InvalidYAML:
    return InvalidYAML(problem, where=where, line=node.start_mark.line + 1)


def _too_deep(node: Node, where: str) -> InvalidYAML:
    return _refused(f"nested more than {MAX_YAML_DEPTH} levels deep", node, where)


def load_documents(text: str, *, where: str) -> list[Document]:
    """The non-empty documents of a multi-document YAML (or JSON) text.

    ``where`` names the text in errors (the file relative to the repository root,
    or the tool whose output this is); errors read ``where:line: ...``. The
    limits of the module docstring apply to every call.
    """
    if len(text) > MAX_RENDER_BYTES:
        raise InvalidYAML(
            f"text of {len(text):,} characters is larger than the {mib(MAX_RENDER_BYTES)} limit",
            where=where,
            line=0,
        )
    budget = max(MIN_YAML_NODES, YAML_NODES_PER_CHAR * len(text))
    loader = _StrictLoader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            budget -= _measure(node, allowance=budget, where=where)
            data = loader.build(node)
            if data is None:
                continue  # ``---`` separators, comment-only documents: nothing to apply
            docs.append(Document(node.start_mark.line + 1, data, loader.mapping_lines))
            loader.mapping_lines = {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problem = err.problem or "syntax error"
        if "maximum nesting depth" in problem:  # libyaml's own limit, in our words
            problem = f"nested more than {MAX_YAML_DEPTH} levels deep"
        elif err.context:
            problem = f"{problem} ({err.context})"
        raise InvalidYAML(problem, where=where, line=line) from err
    except ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise InvalidYAML(err.reason, where=where, line=line) from err
    except yaml.YAMLError as err:
        raise InvalidYAML(str(err), where=where, line=0) from err
    except RecursionError as err:  # the pure-Python composer, without libyaml
        raise InvalidYAML(
            f"nested more than {MAX_YAML_DEPTH} levels deep", where=where, line=0
        ) from err
    finally:
        loader.dispose()
    return docs
