"""The YAML checks of one file and the discovery of app paths, on plain data."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from gitmoor.lint.discover import AppPath, discover
from gitmoor.lint.yamlcheck import check_text

if TYPE_CHECKING:
    from pathlib import Path


def _check(text: str, *, shape: bool = True) -> list[tuple[str, int, int]]:
    result = check_text(textwrap.dedent(text).lstrip("\n"), "f.yaml", shape=shape)
    return [(f.rule, f.line, f.column) for f in result.findings]


def test_a_tab_that_yaml_accepts_is_not_reported() -> None:
    # inside a block scalar's content, and as separation after a key's colon
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  s: |\n    a\n    \tb\n"
    assert _check(text) == []
    assert _check("apiVersion:\tv1\nkind: ConfigMap\nmetadata: {name: a}\n") == []
    # a tab the parser refuses is reported as one, where it is
    assert _check("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  \tname: a\n") == [("GM003", 4, 3)]


def test_list_items_are_checked_at_their_own_line() -> None:
    text = """
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: ok}
    - apiVersion: v1
      kind: ConfigMap
      metadata: {}
    - plain string
    """
    assert sorted(_check(text)) == [
        ("GM004", 10, 0),
        ("GM005", 7, 0),
    ]


def test_shape_checks_are_skipped_for_kustomize_inputs() -> None:
    patch = "- op: replace\n  path: /spec/replicas\n  value: 2\n"
    assert _check(patch, shape=False) == []
    assert _check(patch) == [("GM004", 1, 0)]
    assert _check("a: 1\na: 2\n", shape=False) == [("GM002", 2, 1)]


def test_discovery_rule(tmp_path: Path) -> None:
    def write(
        rel: str, text: str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    ) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    write("plain/a.yaml")
    write("plain/nested/b.yaml")  # part of plain/ (read recursively)
    write("chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
    write("chart/templates/x.yaml")  # inside the chart
    write("shared/cm.yaml")  # only a kustomization's input
    write("kust/kustomization.yaml", "resources:\n- ../shared/cm.yaml\n")
    write(".github/workflows/ci.yaml", "on: push\n")
    assert discover(tmp_path, [tmp_path]) == [
        AppPath("chart", "helm"),
        AppPath("kust", "kustomize"),
        AppPath("plain", "directory"),
    ]
