"""The refresh request an Application carries (``gitmoor.io/refresh``), read from
hostile objects too: whatever the annotation holds, the answer is one of three."""

from __future__ import annotations

from typing import Any

import pytest

from gitmoor.engine.store import refresh_requested
from gitmoor.model.application import REFRESH_ANNOTATION


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        ({"metadata": {"annotations": {REFRESH_ANNOTATION: "hard"}}}, "hard"),
        ({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}}, "normal"),
        # Argo CD treats any other value as a normal refresh.
        ({"metadata": {"annotations": {REFRESH_ANNOTATION: "HARD; rm -rf /"}}}, "normal"),
        ({"metadata": {"annotations": {REFRESH_ANNOTATION: ""}}}, ""),
        ({"metadata": {"annotations": {"other": "hard"}}}, ""),
        ({"metadata": {"annotations": ["not", "a", "map"]}}, ""),
        ({"metadata": {}}, ""),
        ({}, ""),
    ],
)
def test_refresh_requested(obj: dict[str, Any], want: str) -> None:
    assert refresh_requested(obj) == want
