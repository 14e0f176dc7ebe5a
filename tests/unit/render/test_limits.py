"""Parsing and size limits: each hostile input ends in one sentence naming the file.

The limits live in the loader and in ``paths.read_text``, so these go through
``render_app`` (what the engine calls) and, for YAML, ``load_documents`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import PermanentError, RenderResult, UserInputError
from gitmoor.render import RenderCache, RenderOptions, render_app
from gitmoor.render import app as render_app_module
from gitmoor.render.limits import MAX_FILE_BYTES, MAX_RENDER_BYTES, MAX_YAML_DEPTH
from gitmoor.render.yamlload import InvalidYAML, load_documents

Writer = Callable[[str, str], Path]


def billion_laughs(levels: int = 9) -> str:
    """The classic: each level holds nine aliases of the one before (9**levels strings)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "".join(
        f"  {line}\n" for line in lines
    )


def one_sentence(err: UserInputError) -> str:
    text = str(err)
    assert "\n" not in text
    assert "Traceback" not in text
    return text


# --- YAML, in the loader ---------------------------------------------------------


def test_an_alias_bomb_is_refused_naming_the_file_and_line() -> None:
    # Without the limit this document is 9**9 (387 million) strings once
    # expanded; it must be refused while loading, long before any expansion.
    with pytest.raises(InvalidYAML) as err:
        load_documents(billion_laughs(), where="apps/bomb.yaml")
    text = one_sentence(err.value)
    assert "alias bomb" in text
    assert err.value.concerns is not None
    file, line = err.value.concerns.split(":")
    assert file == "apps/bomb.yaml"
    assert 5 <= int(line) <= 13  # one of the anchors, not the top of the file


def test_a_small_document_may_use_aliases_freely() -> None:
    [doc] = load_documents(billion_laughs(levels=4), where="f.yaml")  # 9**4 strings
    assert len(doc.data["data"]["l3"]) == 9


def test_alias_expansion_is_bounded_by_the_documents_own_size() -> None:
    # 200k expanded nodes: over the fixed floor, and more than twice the nodes
    # a text of this size holds without aliases.
    block = "base: &b [" + ", ".join(["x"] * 1000) + "]\n"
    refs = "uses: [" + ", ".join(["*b"] * 200) + "]\n"
    with pytest.raises(InvalidYAML, match="too many aliases/nodes"):
        load_documents(block + refs, where="f.yaml")


def test_a_large_document_without_aliases_is_fine() -> None:
    text = "".join(f"k{i}: [a, b, c, d]\n" for i in range(25_000))  # 150k nodes
    [doc] = load_documents(text, where="f.yaml")
    assert len(doc.data) == 25_000


def test_ten_thousand_levels_of_nesting_end_in_a_sentence() -> None:
    text = "a: " + "[" * 10_000 + "]" * 10_000 + "\n"
    with pytest.raises(InvalidYAML) as err:
        load_documents(text, where="deep.yaml")
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in one_sentence(err.value)
    assert err.value.concerns == "deep.yaml:1"


def test_nesting_past_the_limit_names_the_line_where_it_is_passed() -> None:
    text = "".join("  " * i + "a:\n" for i in range(150)) + "  " * 150 + "x\n"
    with pytest.raises(InvalidYAML, match="nested more than 100 levels") as err:
        load_documents(text, where="deep.yaml")
    assert err.value.concerns == f"deep.yaml:{MAX_YAML_DEPTH + 1}"


def test_nesting_up_to_the_limit_is_fine() -> None:
    text = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    [doc] = load_documents(text, where="f.yaml")
    assert isinstance(doc.data, list)


def test_nesting_through_aliases_counts_too() -> None:
    half = MAX_YAML_DEPTH // 2 + 10
    text = "a: &a " + "[" * half + "]" * half + "\nb: " + "[" * half + "*a" + "]" * half + "\n"
    with pytest.raises(InvalidYAML, match="nested more than"):
        load_documents(text, where="f.yaml")


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    # PyYAML would build a list that contains itself; no JSON can hold it.
    with pytest.raises(InvalidYAML, match="anchor that contains it") as err:
        load_documents("a: &loop [1, *loop]\n", where="cycle.yaml")
    assert err.value.concerns == "cycle.yaml:1"


def test_a_text_over_the_render_limit_is_refused_unread() -> None:
    with pytest.raises(InvalidYAML, match="larger than the 32 MiB limit"):
        load_documents("#" * (MAX_RENDER_BYTES + 1), where="huge")


# --- through render_app ------------------------------------------------------------


def test_an_alias_bomb_in_a_directory_app_is_a_sentence(repo: Path, write: Writer) -> None:
    write("app/bomb.yaml", billion_laughs())
    with pytest.raises(UserInputError, match="alias bomb") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns is not None
    assert err.value.concerns.startswith("app/bomb.yaml:")


def test_an_alias_bomb_in_a_kustomization_is_a_sentence(repo: Path, write: Writer) -> None:
    bomb = (
        billion_laughs()
        .replace("apiVersion: v1\nkind: ConfigMap\n", "")
        .replace("metadata: {name: bomb}\ndata:\n", "commonAnnotations:\n")
    )
    write("app/kustomization.yaml", bomb)
    with pytest.raises(UserInputError, match="alias bomb") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns is not None
    assert err.value.concerns.startswith("app/kustomization.yaml:")


def test_deep_nesting_in_a_directory_app_is_a_sentence(repo: Path, write: Writer) -> None:
    write("app/deep.yaml", "a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    with pytest.raises(UserInputError, match="nested more than") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/deep.yaml:1"


def test_a_symlink_loop_in_a_directory_app_names_the_link(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (repo / "app" / "a.yaml").symlink_to("b.yaml")
    (repo / "app" / "b.yaml").symlink_to("a.yaml")
    with pytest.raises(UserInputError, match="symlink loop") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns in ("app/a.yaml", "app/b.yaml")
    assert str(repo) not in str(err.value)


def test_a_symlinked_directory_loop_names_the_link(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (repo / "app" / "self").symlink_to("self")
    with pytest.raises(UserInputError, match="symlink loop") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/self"


def test_a_100_mb_file_is_refused_by_its_size(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    with (repo / "app" / "big.yaml").open("wb") as f:
        f.truncate(100 * 1000 * 1000)  # sparse: refused before a byte is read
    with pytest.raises(UserInputError) as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/big.yaml"
    assert one_sentence(err.value) == (
        "app/big.yaml: file is 95.4 MiB, larger than the 8 MiB limit per file"
    )


def test_a_big_file_a_directory_app_does_not_read_is_left_alone(repo: Path, write: Writer) -> None:
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    with (repo / "app" / "diagram.png").open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    result = render_app(repo, "app", "c", RenderOptions())
    assert [m.ref.name for m in result.manifests] == ["a"]


def test_a_big_file_in_a_chart_is_refused_before_helm_runs(repo: Path, write: Writer) -> None:
    # helm loads every file of a chart; nothing reaches it (helm need not exist).
    write("chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
    with (repo / "chart" / "blob.bin").open("wb") as f:
        f.truncate(100 * 1000 * 1000)
    with pytest.raises(UserInputError, match="larger than the 8 MiB limit") as err:
        render_app(repo, "chart", "c", RenderOptions())
    assert err.value.concerns == "chart/blob.bin"


def test_files_that_add_up_past_the_render_limit_are_refused(repo: Path, write: Writer) -> None:
    app = _mkdir(repo / "app")
    for i in range(MAX_RENDER_BYTES // MAX_FILE_BYTES + 1):
        with (app / f"part{i}.yaml").open("wb") as f:
            f.truncate(MAX_FILE_BYTES)  # sparse, and never read: the sum is refused first
    with pytest.raises(UserInputError, match="add up to 40 MiB, more than the 32 MiB") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app"


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_a_fifo_is_not_read(repo: Path, write: Writer) -> None:
    _mkdir(repo / "app")
    os.mkfifo(repo / "app" / "pipe.yaml")
    with pytest.raises(UserInputError, match="not a regular file") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/pipe.yaml"


# --- the last wall -----------------------------------------------------------------


class _Exploding:
    name = "exploding"

    def __init__(self, err: Exception) -> None:
        self.err = err

    def render(self, *_: object) -> object:
        raise self.err


@pytest.mark.parametrize(
    ("err", "kind", "text"),
    [
        (RecursionError("maximum recursion depth exceeded"), UserInputError, "nesting too deep"),
        (RuntimeError("Symlink loop from '/x'"), UserInputError, "symlink loop"),
        (OSError(40, "Too many levels of symbolic links"), UserInputError, "symlink loop"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), UserInputError, "not UTF-8"),
        (KeyError("bug"), PermanentError, "internal error while rendering: KeyError"),
    ],
)
def test_errors_that_escape_a_renderer_become_sentences(
    repo: Path,
    write: Writer,
    monkeypatch: pytest.MonkeyPatch,
    err: Exception,
    kind: type[Exception],
    text: str,
) -> None:
    # What the engine's refresh reports as a condition must be a GitmoorError:
    # anything else would leave the app in silent backoff.
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    monkeypatch.setattr(render_app_module, "select_renderer", lambda _: _Exploding(err))
    with pytest.raises(kind, match=text) as caught:
        render_app(repo, "app", "c", RenderOptions())
    assert str(caught.value).startswith("app: ")


def test_a_refusal_is_cached_like_a_render(repo: Path, write: Writer) -> None:
    write("app/bomb.yaml", billion_laughs())
    calls: list[str] = []

    def counting(
        root: Path, path: str, revision: str, options: RenderOptions | None = None
    ) -> RenderResult:
        calls.append(revision)
        return render_app(root, path, revision, options)

    cache = RenderCache(render=counting)
    for _ in range(3):
        with pytest.raises(UserInputError, match="alias bomb") as err:
            cache.get_or_render(repo, "app", "c1", RenderOptions())
        assert err.value.concerns is not None
        assert err.value.concerns.startswith("app/bomb.yaml:")
    assert calls == ["c1"]
