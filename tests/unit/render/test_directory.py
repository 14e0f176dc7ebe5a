from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import Source, UserInputError
from gitmoor.render import DirectoryRenderer, RenderOptions, render_app, select_renderer

Writer = Callable[[str, str], Path]

CM = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
"""


def names(root: Path, path: str) -> list[str]:
    return [m.ref.name for m in render_app(root, path, "c0ffee", RenderOptions()).manifests]


def test_multi_document_files_give_manifests_with_their_start_lines(
    repo: Path, write: Writer
) -> None:
    write(
        "apps/web/all.yaml",
        """
        # leading comment
        apiVersion: v1
        kind: Namespace
        metadata:
          name: web
        ---
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: web
        """,
    )
    result = render_app(repo, "apps/web", "c0ffee", RenderOptions())
    assert result.revision == "c0ffee"
    assert [str(m.ref) for m in result.manifests] == ["Namespace web", "Deployment.apps web/web"]
    # Source.file is relative to the app path, as the model documents.
    assert [m.source for m in result.manifests] == [Source("all.yaml", 2), Source("all.yaml", 8)]
    assert result.warnings == ()


def test_files_are_read_recursively_in_sorted_order(repo: Path, write: Writer) -> None:
    write("app/b.yaml", CM.format(name="b"))
    write("app/a.yml", CM.format(name="a"))
    write("app/sub/c.json", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}')
    write("app/a/z.yaml", CM.format(name="az"))
    write("app/README.md", "apiVersion: not a manifest file")
    write("app/values.txt", "x: 1")
    assert names(repo, "app") == ["az", "a", "b", "c"]


def test_list_kinds_are_flattened_with_item_lines(repo: Path, write: Writer) -> None:
    write(
        "app/list.yaml",
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: one}
        - apiVersion: v1
          kind: Secret
          metadata: {name: two}
        ---
        apiVersion: v1
        kind: ConfigMapList
        items:
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: three}
        """,
    )
    result = render_app(repo, "app", "c", RenderOptions())
    assert [(m.ref.kind, m.ref.name) for m in result.manifests] == [
        ("ConfigMap", "one"),
        ("Secret", "two"),
        ("ConfigMap", "three"),
    ]
    assert [m.source.line for m in result.manifests if m.source] == [4, 7, 14]


def test_hidden_files_and_directories_are_skipped(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", CM.format(name="visible"))
    write("app/.hidden.yaml", CM.format(name="hidden-file"))
    write("app/.github/workflows/ci.yaml", "on: push\njobs: {}\n")
    write("app/sub/.cache/x.yaml", CM.format(name="hidden-dir"))
    assert names(repo, "app") == ["visible"]


def test_an_app_path_that_is_itself_hidden_still_renders(repo: Path, write: Writer) -> None:
    write(".config/app/cm.yaml", CM.format(name="a"))
    assert names(repo, ".config/app") == ["a"]


def test_duplicate_key_names_the_file_from_repo_root_and_the_line(
    repo: Path, write: Writer
) -> None:
    write("apps/web/ok.yaml", CM.format(name="ok"))
    write(
        "apps/web/sub/dup.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: a
        data:
          k: v
          k: w
        """,
    )
    with pytest.raises(UserInputError, match="duplicate key 'k'") as err:
        render_app(repo, "apps/web", "c", RenderOptions())
    assert err.value.concerns == "apps/web/sub/dup.yaml:7"


def test_broken_yaml_names_the_file_and_line(repo: Path, write: Writer) -> None:
    write("apps/web/broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n")
    with pytest.raises(UserInputError, match="invalid YAML") as err:
        render_app(repo, "apps/web", "c", RenderOptions())
    assert str(err.value).startswith("apps/web/broken.yaml:")
    assert err.value.concerns is not None
    assert int(err.value.concerns.rsplit(":", 1)[1]) >= 4


@pytest.mark.parametrize(
    "text,expected",
    [
        ("- a\n- b\n", "not a Kubernetes object"),
        ("kind: ConfigMap\nmetadata: {name: a}\n", "apiVersion"),
        ("apiVersion: v1\nmetadata: {name: a}\n", "kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name"),
    ],
)
def test_documents_that_are_not_objects_are_refused_with_file_and_line(
    repo: Path, write: Writer, text: str, expected: str
) -> None:
    write("app/a.yaml", CM.format(name="first"))
    write("app/b.yaml", "---\n" + text)
    with pytest.raises(UserInputError, match=expected) as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/b.yaml:2"


def test_list_item_without_name_points_at_the_item(repo: Path, write: Writer) -> None:
    write(
        "app/list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {}\n",
    )
    with pytest.raises(UserInputError, match=r"metadata\.name") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/list.yaml:4"


def test_empty_directory_is_a_warning_not_an_error(repo: Path, write: Writer) -> None:
    write("app/empty.yaml", "---\n# nothing yet\n")
    result = render_app(repo, "app", "c", RenderOptions())
    assert result.manifests == ()
    assert result.warnings == ("no manifests found under path 'app'",)


def test_utf8_bom_is_tolerated_and_other_encodings_are_named(repo: Path, write: Writer) -> None:
    (repo / "app").mkdir()
    (repo / "app" / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + CM.format(name="bom").encode())
    assert names(repo, "app") == ["bom"]
    (repo / "app" / "latin1.yaml").write_bytes("data: {k: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(UserInputError, match="UTF-8") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/latin1.yaml"


def test_plain_directory_selects_the_directory_renderer(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", CM.format(name="a"))
    assert isinstance(select_renderer(repo / "app"), DirectoryRenderer)
