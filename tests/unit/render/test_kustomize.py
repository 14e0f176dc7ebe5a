import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import PermanentError, RetryableError, UserInputError
from gitmoor.render import KustomizeRenderer, RenderOptions, open_app, render_app, select_renderer
from gitmoor.render.kustomize import check_bases

Writer = Callable[[str, str], Path]

pytestmark = pytest.mark.usefixtures("kubectl")


@pytest.fixture
def base(write: Writer) -> None:
    write(
        "base/kustomization.yaml",
        """
        resources:
        - deployment.yaml
        """,
    )
    write(
        "base/deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 1
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
              - name: web
                image: nginx:1.27
        """,
    )


@pytest.mark.usefixtures("base")
def test_overlay_with_patch_and_config_map_generator(repo: Path, write: Writer) -> None:
    write(
        "overlays/prod/kustomization.yaml",
        """
        resources:
        - ../../base
        patches:
        - path: replicas.yaml
        configMapGenerator:
        - name: web-config
          literals:
          - MODE=prod
        """,
    )
    write(
        "overlays/prod/replicas.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 3
        """,
    )
    result = render_app(repo, "overlays/prod", "c0ffee", RenderOptions())
    by_kind = {m.ref.kind: m for m in result.manifests}
    assert set(by_kind) == {"Deployment", "ConfigMap"}
    assert by_kind["Deployment"].obj["spec"]["replicas"] == 3
    cm = by_kind["ConfigMap"]
    # The generator's content hash suffix: proof that the real kustomize ran.
    assert cm.ref.name.startswith("web-config-")
    assert len(cm.ref.name) > len("web-config-")
    assert cm.obj["data"] == {"MODE": "prod"}
    # The patch file is a kustomize input, not an object of its own.
    assert len(result.manifests) == 2
    assert result.revision == "c0ffee"


@pytest.mark.parametrize("name", ["kustomization.yaml", "kustomization.yml", "Kustomization"])
def test_every_kustomization_file_name_selects_kustomize(
    repo: Path, write: Writer, name: str
) -> None:
    write(f"app/{name}", "resources: [cm.yaml]\n")
    write("app/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    write("app/not-listed.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    assert isinstance(select_renderer(repo / "app"), KustomizeRenderer)
    result = render_app(repo, "app", "c", RenderOptions())
    assert [m.ref.name for m in result.manifests] == ["a"]


@pytest.mark.parametrize(
    "entry",
    [
        "github.com/example/repo//deploy?ref=v1.0.0",
        "https://github.com/example/repo/deploy?ref=main",
        "https://raw.githubusercontent.com/example/repo/main/cm.yaml",
        "git::https://example.com/repo.git//deploy",
        "git@github.com:example/repo.git/deploy",
        "ssh://git@example.com/repo.git",
    ],
)
def test_remote_base_is_refused(repo: Path, write: Writer, entry: str) -> None:
    write("app/kustomization.yaml", f"resources:\n- {entry}\n")
    with pytest.raises(UserInputError, match="remote resources entry") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/kustomization.yaml"
    assert entry in str(err.value)


@pytest.mark.usefixtures("base")
def test_remote_base_in_a_local_base_is_refused_too(repo: Path, write: Writer) -> None:
    write("base/kustomization.yaml", "resources:\n- deployment.yaml\n- github.com/x/y//z\n")
    write("overlay/kustomization.yaml", "resources: [../base]\n")
    with pytest.raises(UserInputError, match="remote") as err:
        render_app(repo, "overlay", "c", RenderOptions())
    assert err.value.concerns == "base/kustomization.yaml"


def test_remote_component_is_refused(repo: Path, write: Writer) -> None:
    write("app/kustomization.yaml", "components:\n- https://example.com/comp\n")
    with pytest.raises(UserInputError, match="remote components entry"):
        render_app(repo, "app", "c", RenderOptions())


def test_allowing_remote_bases_lets_them_past_the_check(repo: Path, write: Writer) -> None:
    write("app/kustomization.yaml", "resources:\n- github.com/example/repo//deploy\n")
    app = open_app(repo, "app", "c")
    check_bases(app, RenderOptions(allow_remote_bases=True))
    with pytest.raises(UserInputError):
        check_bases(app, RenderOptions())


def test_local_base_outside_the_repository_is_refused(repo: Path, write: Writer) -> None:
    outside = repo.parent / "outside"
    (outside / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (outside / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n")
    write("app/kustomization.yaml", f"resources:\n- ../../outside\n- {outside}\n")
    with pytest.raises(UserInputError, match="outside the repository") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/kustomization.yaml"


def test_missing_local_resource_is_named(repo: Path, write: Writer) -> None:
    write("app/kustomization.yaml", "resources:\n- nope.yaml\n")
    with pytest.raises(UserInputError, match=r"'nope\.yaml' does not exist"):
        render_app(repo, "app", "c", RenderOptions())


def test_kustomize_failure_reports_its_message_without_checkout_paths(
    repo: Path, write: Writer
) -> None:
    write("app/kustomization.yaml", "resources: [a.yaml, b.yaml]\n")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\n"
    write("app/a.yaml", cm)
    write("app/b.yaml", cm)
    with pytest.raises(UserInputError, match="kustomize failed") as err:
        render_app(repo, "app", "c", RenderOptions())
    message = str(err.value)
    assert "already registered id" in message
    assert str(repo) not in message
    assert "run.go" not in message  # klog's prefix is noise to a user
    assert err.value.concerns == "app"


def test_duplicate_key_in_kustomization_names_file_and_line(repo: Path, write: Writer) -> None:
    write("app/kustomization.yaml", "resources: [a.yaml]\nresources: [b.yaml]\n")
    with pytest.raises(UserInputError, match="duplicate key 'resources'") as err:
        render_app(repo, "app", "c", RenderOptions())
    assert err.value.concerns == "app/kustomization.yaml:2"


def test_kubectl_command_comes_from_the_environment(
    repo: Path, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("app/kustomization.yaml", "resources: []\n")
    recorder = repo.parent / "fake-kubectl"
    recorder.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {repo.parent / "args"}\n'
        "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: fake}\\n'\n"
    )
    recorder.chmod(recorder.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("GITMOOR_KUBECTL", str(recorder))
    result = render_app(repo, "app", "c", RenderOptions())
    assert [m.ref.name for m in result.manifests] == ["fake"]
    args = (repo.parent / "args").read_text().splitlines()
    assert args == [
        "kustomize",
        "--load-restrictor=LoadRestrictionsRootOnly",
        "--",
        str((repo / "app").resolve()),
    ]


def test_missing_kubectl_is_a_permanent_error(
    repo: Path, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("app/kustomization.yaml", "resources: []\n")
    monkeypatch.setenv("GITMOOR_KUBECTL", str(repo.parent / "no-such-kubectl"))
    with pytest.raises(PermanentError, match="command not found"):
        render_app(repo, "app", "c", RenderOptions())


@pytest.mark.usefixtures("base")
def test_outbound_symlink_in_a_base_outside_the_app_is_refused(repo: Path, write: Writer) -> None:
    secret = repo.parent / "outside" / "secret.env"
    secret.write_text("PASSWORD=hunter2\n")
    (repo / "base" / "secret.env").symlink_to(secret)
    write("overlay/kustomization.yaml", "resources: [../base]\n")
    with pytest.raises(UserInputError, match="symlink points outside") as err:
        render_app(repo, "overlay", "c", RenderOptions())
    assert err.value.concerns == "base/secret.env"


def test_a_hanging_kubectl_times_out_as_retryable(
    repo: Path, write: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("app/kustomization.yaml", "resources: []\n")
    slow = repo.parent / "slow-kubectl"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(slow.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("GITMOOR_KUBECTL", str(slow))
    with pytest.raises(RetryableError, match=r"did not finish within 0\.3s"):
        render_app(repo, "app", "c", RenderOptions(timeout=0.3))
