import os
from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import PermanentError, UserInputError
from gitmoor.render import RenderOptions, open_app, render_app

Writer = Callable[[str, str], Path]

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


@pytest.mark.parametrize("path", ["..", "../outside", "apps/../../outside", "./../outside"])
def test_path_escaping_the_root_with_dotdot_is_refused(repo: Path, path: str) -> None:
    (repo.parent / "outside" / "cm.yaml").write_text(CM.format(name="stolen"))
    with pytest.raises(UserInputError, match="escapes the repository root") as err:
        render_app(repo, path, "c", RenderOptions())
    assert err.value.concerns == path


def test_dotdot_that_stays_inside_is_fine(repo: Path, write: Writer) -> None:
    write("apps/web/cm.yaml", CM.format(name="web"))
    (repo / "apps" / "db").mkdir()
    result = render_app(repo, "apps/db/../web", "c", RenderOptions())
    assert [m.ref.name for m in result.manifests] == ["web"]


@pytest.mark.parametrize("make_path", [lambda outside: str(outside), lambda _: "/etc"])
def test_absolute_path_is_refused(repo: Path, make_path: Callable[[Path], str]) -> None:
    outside = repo.parent / "outside"
    (outside / "cm.yaml").write_text(CM.format(name="stolen"))
    path = make_path(outside)
    with pytest.raises(UserInputError, match="not absolute") as err:
        render_app(repo, path, "c", RenderOptions())
    assert err.value.concerns == path


def test_app_path_through_a_symlink_out_of_the_repo_is_refused(repo: Path) -> None:
    outside = repo.parent / "outside"
    (outside / "cm.yaml").write_text(CM.format(name="stolen"))
    (repo / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserInputError, match="outside the repository") as err:
        render_app(repo, "link", "c", RenderOptions())
    assert err.value.concerns == "link"


def test_symlinked_file_pointing_outside_is_refused_not_read(repo: Path, write: Writer) -> None:
    write("app/ok.yaml", CM.format(name="ok"))
    secret = repo.parent / "outside" / "secret.yaml"
    secret.write_text(CM.format(name="stolen"))
    (repo / "app" / "secret.yaml").symlink_to(secret)
    with pytest.raises(UserInputError, match="symlink points outside") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/secret.yaml"


def test_any_outbound_symlink_is_refused_even_one_no_renderer_reads(
    repo: Path, write: Writer
) -> None:
    # helm hands every chart file to templates (.Files.Get), whatever its suffix.
    write("app/ok.yaml", CM.format(name="ok"))
    (repo / "app" / "notes.txt").symlink_to("/etc/hostname")
    with pytest.raises(UserInputError, match="symlink points outside"):
        render_app(repo, "app", "c", RenderOptions())


def test_outbound_symlink_reached_through_an_inbound_directory_link_is_refused(
    repo: Path, write: Writer
) -> None:
    write("app/ok.yaml", CM.format(name="ok"))
    write("shared/cm.yaml", CM.format(name="shared"))
    (repo / "shared" / "evil.yaml").symlink_to(repo.parent / "outside")
    (repo / "app" / "shared").symlink_to(repo / "shared", target_is_directory=True)
    with pytest.raises(UserInputError, match="symlink points outside") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "shared/evil.yaml"


def test_symlinks_that_stay_inside_the_repo_are_followed_for_files(
    repo: Path, write: Writer
) -> None:
    write("shared/cm.yaml", CM.format(name="shared"))
    (repo / "app").mkdir()
    (repo / "app" / "cm.yaml").symlink_to(Path("..") / "shared" / "cm.yaml")
    (repo / "app" / "loop").symlink_to(repo / "app", target_is_directory=True)
    result = render_app(repo, "app", "c", RenderOptions())
    assert [m.ref.name for m in result.manifests] == ["shared"]


def test_missing_path_is_a_user_error(repo: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist") as err:
        render_app(repo, "apps/nope", "c", RenderOptions())
    assert err.value.concerns == "apps/nope"


def test_path_to_a_file_is_a_user_error(repo: Path, write: Writer) -> None:
    write("app.yaml", CM.format(name="a"))
    with pytest.raises(UserInputError, match="not a directory"):
        render_app(repo, "app.yaml", "c", RenderOptions())


def test_missing_checkout_is_not_the_users_fault(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        render_app(tmp_path / "gone", ".", "c", RenderOptions())


def test_open_app_normalises_the_path(repo: Path, write: Writer) -> None:
    write("apps/web/cm.yaml", CM.format(name="a"))
    app = open_app(repo, "./apps//web/", "c")
    assert (app.path, app.app_dir) == ("apps/web", (repo / "apps" / "web").resolve())
    assert open_app(repo, "", "c").path == "."


def test_root_reached_through_a_symlink_still_works(tmp_path: Path, repo: Path) -> None:
    (repo / "app").mkdir()
    (repo / "app" / "cm.yaml").write_text(CM.format(name="a"))
    link = tmp_path / "checkout-link"
    os.symlink(repo, link)
    assert [m.ref.name for m in render_app(link, "app", "c", RenderOptions()).manifests] == ["a"]
