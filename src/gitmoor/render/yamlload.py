"""A strict YAML loader that keeps line numbers and refuses duplicate keys.

PyYAML's safe loader silently keeps the last of two equal keys, while the Go
YAML decoder behind ``kubectl apply`` refuses them; a manifest that means
something else than it reads must fail here, naming the file and line, not
deploy half of what the author wrote.

Timestamps stay strings: Kubernetes decodes YAML into JSON, where a date is a
string, and a ``datetime`` would not survive the trip to the API server. Non-string
keys become strings for the same reason (``1: a`` is ``"1": a`` in JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from yaml.constructor import ConstructorError
from yaml.reader import ReaderError

from gitmoor.model import UserInputError

if TYPE_CHECKING:
    from yaml.nodes import MappingNode, Node, ScalarNode

try:
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_MERGE_TAG = "tag:yaml.org,2002:merge"


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
            key = self._key(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        # Built here rather than by the base class, whose dict would fold ``1``
        # and ``true`` into one key before they become the strings "1" and "true".
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            mapping[self._key(key_node)] = self.construct_object(value_node, deep=deep)
        return mapping

    def _key(self, key_node: Node) -> object:
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


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_yaml_map)
_StrictLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", _StrictLoader.construct_timestamp_as_string
)


def load_documents(text: str, *, where: str) -> list[Document]:
    """The non-empty documents of a multi-document YAML (or JSON) text.

    ``where`` names the text in errors (the file relative to the repository root,
    or the tool whose output this is); errors read ``where:line: ...``.
    """
    loader = _StrictLoader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            data = loader.construct_document(node)
            if data is None:
                continue  # ``---`` separators, comment-only documents: nothing to apply
            docs.append(Document(node.start_mark.line + 1, data, loader.mapping_lines))
            loader.mapping_lines = {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problem = err.problem or "syntax error"
        if err.context:
            problem = f"{problem} ({err.context})"
        raise InvalidYAML(problem, where=where, line=line) from err
    except ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        raise InvalidYAML(err.reason, where=where, line=line) from err
    except yaml.YAMLError as err:
        raise InvalidYAML(str(err), where=where, line=0) from err
    finally:
        loader.dispose()
    return docs
