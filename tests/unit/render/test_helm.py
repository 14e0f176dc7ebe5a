import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import Source, UserInputError
from gitmoor.render import HelmRenderer, RenderOptions, render_app, select_renderer

Writer = Callable[[str, str], Path]


@pytest.fixture
def chart(write: Writer) -> str:
    """A chart at charts/web with a CRD, a subchart and a two-document template."""
    write("charts/web/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    write("charts/web/values.yaml", "greeting: hello\nreplicas: 1\n")
    write(
        "charts/web/templates/config.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-config
          namespace: {{ .Release.Namespace }}
        data:
          greeting: {{ .Values.greeting | quote }}
          replicas: {{ .Values.replicas | quote }}
        """,
    )
    write(
        "charts/web/templates/pair.yaml",
        """
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: first
        ---
        apiVersion: v1
        kind: ServiceAccount
        metadata:
          name: second
        """,
    )
    write(
        "charts/web/crds/widgets.yaml",
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: widgets.example.com
        spec:
          group: example.com
          names: {kind: Widget, plural: widgets}
          scope: Namespaced
          versions:
          - name: v1
            served: true
            storage: true
            schema: {openAPIV3Schema: {type: object}}
        """,
    )
    write("charts/web/charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.1.0\n")
    write(
        "charts/web/charts/sub/templates/sub.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sub-secret\n",
    )
    write("envs/prod/values.yaml", "greeting: hello-prod\nreplicas: 3\n")
    return "charts/web"


def data_of(manifests: tuple[object, ...], name: str) -> dict[str, str]:
    for m in manifests:
        assert hasattr(m, "ref") and hasattr(m, "obj")
        if m.ref.name == name:
            data: dict[str, str] = m.obj["data"]
            return data
    raise AssertionError(f"no manifest named {name}")


@pytest.mark.usefixtures("helm")
def test_chart_with_values_file_renders(repo: Path, chart: str) -> None:
    options = RenderOptions(
        release_name="shop",
        namespace="prod",
        value_files=("../../envs/prod/values.yaml",),
    )
    result = render_app(repo, chart, "c0ffee", options)
    assert isinstance(select_renderer(repo / chart), HelmRenderer)
    assert result.revision == "c0ffee"
    refs = {(m.ref.kind, m.ref.name) for m in result.manifests}
    assert refs == {
        ("CustomResourceDefinition", "widgets.example.com"),
        ("ConfigMap", "shop-config"),
        ("ServiceAccount", "first"),
        ("ServiceAccount", "second"),
        ("Secret", "sub-secret"),
    }
    assert data_of(result.manifests, "shop-config") == {"greeting": "hello-prod", "replicas": "3"}
    config = next(m for m in result.manifests if m.ref.name == "shop-config")
    assert config.ref.namespace == "prod"  # .Release.Namespace, from the options
    sources = {m.ref.name: m.source for m in result.manifests}
    assert sources == {
        "widgets.example.com": Source("crds/widgets.yaml"),
        "shop-config": Source("templates/config.yaml"),
        "first": Source("templates/pair.yaml"),
        "second": Source("templates/pair.yaml"),
        "sub-secret": Source("charts/sub/templates/sub.yaml"),
    }


@pytest.mark.usefixtures("helm")
def test_inline_values_win_over_value_files(repo: Path, chart: str) -> None:
    options = RenderOptions(
        release_name="shop",
        value_files=("/envs/prod/values.yaml",),  # absolute: from the repository root
        values={"replicas": 5},
    )
    result = render_app(repo, chart, "c", options)
    assert data_of(result.manifests, "shop-config") == {"greeting": "hello-prod", "replicas": "5"}


@pytest.mark.usefixtures("helm")
def test_crds_can_be_left_out(repo: Path, chart: str) -> None:
    result = render_app(repo, chart, "c", RenderOptions(include_crds=False))
    assert "CustomResourceDefinition" not in {m.ref.kind for m in result.manifests}
    assert "release-name-config" in {m.ref.name for m in result.manifests}


@pytest.mark.parametrize("value_file", ["../../../outside/values.yaml", "/../outside/values.yaml"])
def test_value_file_outside_the_repository_is_refused(
    repo: Path, chart: str, value_file: str
) -> None:
    (repo.parent / "outside" / "values.yaml").write_text("greeting: stolen\n")
    with pytest.raises(UserInputError, match="outside the repository") as err:
        render_app(repo, chart, "c", RenderOptions(value_files=(value_file,)))
    assert err.value.concerns == value_file


def test_value_file_path_cannot_smuggle_a_second_file_past_helm(
    repo: Path, chart: str, write: Writer
) -> None:
    # helm splits --values on commas; "x,/etc/hostname" is a legal path in the repo.
    write("x,/etc/hostname", "greeting: inside\n")
    with pytest.raises(UserInputError, match="comma"):
        render_app(repo, chart, "c", RenderOptions(value_files=("/x,/etc/hostname",)))


def test_value_file_symlinked_out_of_the_repository_is_refused(repo: Path, chart: str) -> None:
    secret = repo.parent / "outside" / "values.yaml"
    secret.write_text("greeting: stolen\n")
    (repo / "envs" / "linked.yaml").symlink_to(secret)
    with pytest.raises(UserInputError, match="outside the repository"):
        render_app(repo, chart, "c", RenderOptions(value_files=("/envs/linked.yaml",)))


@pytest.mark.parametrize(
    "options,message",
    [
        (RenderOptions(value_files=("missing.yaml",)), "does not exist"),
        (RenderOptions(value_files=("https://example.com/v.yaml",)), "not URLs"),
        (RenderOptions(release_name="--post-renderer=/bin/sh"), "release name"),
        (RenderOptions(release_name="Shop"), "release name"),
        (RenderOptions(namespace="-n kube-system"), "namespace"),
        (RenderOptions(kube_version="--debug"), "Kubernetes version"),
        (RenderOptions(api_versions=("--x",)), "API version"),
    ],
)
def test_bad_helm_options_are_user_errors(
    repo: Path, chart: str, options: RenderOptions, message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        render_app(repo, chart, "c", options)


@pytest.mark.usefixtures("helm")
def test_template_error_is_a_user_error_naming_the_template(
    repo: Path, chart: str, write: Writer
) -> None:
    write("charts/web/templates/bad.yaml", "metadata:\n  name: {{ .Values.nope.deeper }}\n")
    with pytest.raises(UserInputError, match="helm template failed") as err:
        render_app(repo, chart, "c", RenderOptions())
    assert "templates/bad.yaml" in str(err.value)
    assert str(repo) not in str(err.value)
    assert err.value.concerns == chart


@pytest.mark.usefixtures("helm")
def test_missing_subchart_is_not_fetched(repo: Path, write: Writer) -> None:
    write(
        "chart/Chart.yaml",
        """
        apiVersion: v2
        name: app
        version: 0.1.0
        dependencies:
        - name: redis
          version: 1.0.0
          repository: https://charts.example.com
        """,
    )
    write("chart/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    with pytest.raises(UserInputError, match="redis"):
        render_app(repo, "chart", "c", RenderOptions())


def test_chart_yaml_wins_over_a_kustomization(repo: Path, write: Writer) -> None:
    write("app/Chart.yaml", "apiVersion: v2\nname: app\nversion: 0.1.0\n")
    write("app/kustomization.yaml", "resources: []\n")
    assert isinstance(select_renderer(repo / "app"), HelmRenderer)


def test_helm_runs_isolated_from_the_users_helm_and_with_safe_arguments(
    repo: Path, chart: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = repo.parent / "fake-helm-out"
    fake = repo.parent / "fake-helm"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {out}.args\n'
        f"env | grep '^HELM_' | sort > {out}.env\n"
        'for a in "$@"; do case "$a" in --values=*) cat "${a#--values=}" >> '
        f"{out}.values; echo >> {out}.values;; esac; done\n"
        "printf -- '---\\n# Source: web/templates/config.yaml\\n"
        "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: fake}\\n'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("GITMOOR_HELM", str(fake))
    monkeypatch.setenv("HELM_CONFIG_HOME", str(repo.parent / "users-helm-config"))
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(repo.parent / "users-repositories.yaml"))
    options = RenderOptions(
        release_name="shop",
        value_files=("/envs/prod/values.yaml",),
        values={"replicas": 7},
        kube_version="1.37.2",
        api_versions=("example.com/v1",),
    )
    result = render_app(repo, chart, "c", options)
    assert [(m.ref.name, m.source) for m in result.manifests] == [
        ("fake", Source("templates/config.yaml"))
    ]

    args = Path(f"{out}.args").read_text().splitlines()
    inline = args[-4]
    assert args == [
        "template",
        "--namespace=default",
        "--include-crds",
        "--kube-version=1.37.2",
        "--api-versions=example.com/v1",
        f"--values={(repo / 'envs/prod/values.yaml').resolve()}",
        inline,
        "--",
        "shop",
        str((repo / chart).resolve()),
    ]
    assert inline.startswith("--values=/")
    assert '{"replicas": 7}' in Path(f"{out}.values").read_text()

    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines())
    assert set(env) == {"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"}
    assert all(str(repo.parent) not in v for v in env.values())
    # The temporary homes (and the inline values in them) are gone after the render.
    assert not Path(env["HELM_CONFIG_HOME"]).exists()
    assert not Path(inline.removeprefix("--values=")).exists()


@pytest.mark.usefixtures("helm")
def test_template_rendering_broken_yaml_is_named(repo: Path, chart: str, write: Writer) -> None:
    write(
        "charts/web/templates/dup.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: {{ .Release.Name }}\n",
    )
    with pytest.raises(UserInputError, match="duplicate key 'name'") as err:
        render_app(repo, chart, "c", RenderOptions())
    assert err.value.concerns == "charts/web/templates/dup.yaml (as rendered by helm)"
