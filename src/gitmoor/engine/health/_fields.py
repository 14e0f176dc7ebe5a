"""Tolerant readers for the untyped dicts the API server returns.

Health rules read objects written by controllers we do not control; a field of the
wrong type must not crash the reconcile loop. Readers return a default instead, as
Go's ``unstructured.Nested*`` helpers do when a field is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitmoor.model import JSONDict


def get(obj: JSONDict, *path: str) -> Any:
    """The value at ``path``, or None if any step is missing or not a mapping."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def get_int(obj: JSONDict, *path: str) -> int | None:
    value = get(obj, *path)
    # bool is an int in Python; a `true` where a count belongs is not a count.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def get_str(obj: JSONDict, *path: str) -> str:
    value = get(obj, *path)
    return value if isinstance(value, str) else ""


def get_bool(obj: JSONDict, *path: str) -> bool:
    return get(obj, *path) is True


def get_list(obj: JSONDict, *path: str) -> list[Any]:
    value = get(obj, *path)
    return value if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class Condition:
    """One entry of ``status.conditions`` (metav1.Condition or a kind's own shape)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""

    @property
    def is_true(self) -> bool:
        return self.status == "True"

    @property
    def is_false(self) -> bool:
        return self.status == "False"

    def describe(self) -> str:
        """``reason: message``, or whichever of the two is set."""
        return ": ".join(part for part in (self.reason, self.message) if part)


def labelled(prefix: str, detail: str) -> str:
    """``prefix: detail``, or the prefix alone when there is no detail."""
    return f"{prefix}: {detail}" if detail else prefix


def conditions(obj: JSONDict) -> list[Condition]:
    out = []
    for raw in get_list(obj, "status", "conditions"):
        if isinstance(raw, dict) and isinstance(raw.get("type"), str):
            out.append(
                Condition(
                    type=raw["type"],
                    status=str(raw.get("status") or ""),
                    reason=str(raw.get("reason") or ""),
                    message=str(raw.get("message") or ""),
                )
            )
    return out


def condition(obj: JSONDict, type_: str) -> Condition | None:
    """The first condition of ``type_``; controllers write each type once."""
    return next((c for c in conditions(obj) if c.type == type_), None)


def group_kind(obj: JSONDict) -> tuple[str, str]:
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else ""
    return group, kind if isinstance(kind, str) else ""


def generation_lag(obj: JSONDict) -> tuple[int, int] | None:
    """(generation, observedGeneration) when the controller is behind, else None.

    Only judged when both are present: a custom resource whose controller does not
    write ``observedGeneration`` is not thereby forever behind (kstatus
    ``checkGeneration`` does the same).
    """
    generation = get_int(obj, "metadata", "generation")
    observed = get_int(obj, "status", "observedGeneration")
    if generation is None or observed is None or observed >= generation:
        return None
    return generation, observed
