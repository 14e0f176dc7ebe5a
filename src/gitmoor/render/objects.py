"""From YAML documents to manifests: the rules shared by every renderer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitmoor.model import Manifest, ObjectRef, Source, UserInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.render.yamlload import Document


def _is_list(obj: dict[str, Any]) -> bool:
    # ``kind: List`` (v1) and typed lists such as ``ConfigMapList`` are what
    # ``kubectl get -o yaml`` prints and what ``kubectl apply`` flattens into
    # their items (its FlattenListVisitor); Argo CD's directory source does the same.
    kind = obj.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list)


def manifests_of(
    doc: Document, *, where: str, source_file: str | None, keep_line: bool = True
) -> Iterator[Manifest]:
    """The manifests of one document, ``kind: List`` items flattened in order.

    ``where`` names the text in errors (repository-relative file, or a tool);
    ``source_file`` is what ``Source.file`` records (relative to the app path), or
    ``None`` when the origin is unknown. ``keep_line`` is false for tool output,
    whose line numbers point into the output, not into any file of the user, so
    they appear neither in ``Source`` nor in errors.
    """
    yield from _walk(doc, doc.data, where=where, source_file=source_file, keep_line=keep_line)


def _walk(
    doc: Document, data: object, *, where: str, source_file: str | None, keep_line: bool
) -> Iterator[Manifest]:
    line = doc.line_of(data)
    at = f"{where}:{line}" if keep_line else where
    if not isinstance(data, dict):
        raise UserInputError(
            f"document is a {type(data).__name__}, not a Kubernetes object (a mapping)",
            concerns=at,
        )
    if _is_list(data):
        for item in data["items"]:
            yield from _walk(doc, item, where=where, source_file=source_file, keep_line=keep_line)
        return
    ref = ObjectRef.of(data, where=at)
    source = None
    if source_file is not None:
        source = Source(source_file, line if keep_line else 0)
    yield Manifest(ref, data, source)
