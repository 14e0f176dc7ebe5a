"""Hostile kustomizations: every path-bearing field is checked before kustomize runs.

Each case ends in one ``UserInputError`` naming the kustomization (or plugin
config) file and the field, and kubectl is never started: ``GITMOOR_KUBECTL``
points at a recorder that leaves a mark if it runs.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from gitmoor.model import UserInputError
from gitmoor.render import RenderOptions, render_app

Writer = Callable[[str, str], Path]

SECRET = "PASSWORD=hunter2\n"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"


@pytest.fixture
def ran(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubectl that marks that it ran; the file is absent while nothing ran."""
    mark = repo.parent / "kubectl-ran"
    fake = repo.parent / "fake-kubectl"
    fake.write_text(f"#!/bin/sh\ntouch {mark}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("GITMOOR_KUBECTL", str(fake))
    (repo.parent / "outside" / "secret.txt").write_text(SECRET)
    return mark


def refused(repo: Path, ran: Path, *, app: str = "app") -> UserInputError:
    with pytest.raises(UserInputError) as err:
        render_app(repo, app, "c0ffee", RenderOptions())
    assert not ran.exists(), "kubectl ran although the kustomization was refused"
    assert "hunter2" not in str(err.value)
    assert "Traceback" not in str(err.value)
    assert "\n" not in str(err.value)
    return err.value


OUTSIDE = "../../outside/secret.txt"
REMOTE = "http://127.0.0.1:1/secret.txt"

# (kustomization text, the field the error must name); {p} is the hostile path.
FIELDS = {
    "configMapGenerator files": (
        "configMapGenerator:\n- name: x\n  files:\n  - {p}\n",
        "configMapGenerator[0].files",
    ),
    "configMapGenerator files key=path": (
        "configMapGenerator:\n- name: x\n  files:\n  - stolen={p}\n",
        "configMapGenerator[0].files",
    ),
    "secretGenerator envs": (
        "secretGenerator:\n- name: x\n  literals: [a=b]\n- name: y\n  envs:\n  - {p}\n",
        "secretGenerator[1].envs",
    ),
    "configMapGenerator env": (
        "configMapGenerator:\n- name: x\n  env: {p}\n",
        "configMapGenerator[0].env",
    ),
    "patches path": (
        "resources: [cm.yaml]\npatches:\n- path: {p}\n",
        "patches[0].path",
    ),
    "patchesJson6902 path": (
        "resources: [cm.yaml]\npatchesJson6902:\n- target: {{kind: ConfigMap, name: a}}\n"
        "  path: {p}\n",
        "patchesJson6902[0].path",
    ),
    "patchesStrategicMerge": (
        "resources: [cm.yaml]\npatchesStrategicMerge:\n- {p}\n",
        "patchesStrategicMerge",
    ),
    "replacements path": (
        "resources: [cm.yaml]\nreplacements:\n- path: {p}\n",
        "replacements[0].path",
    ),
    "crds": ("crds:\n- {p}\n", "crds"),
    "configurations": ("configurations:\n- {p}\n", "configurations"),
    "openapi path": ("openapi:\n  path: {p}\n", "openapi.path"),
    "transformers file": ("transformers:\n- {p}\n", "transformers"),
}


@pytest.mark.parametrize("case", list(FIELDS))
def test_a_path_outside_the_repository_is_refused_naming_file_and_field(
    repo: Path, write: Writer, ran: Path, case: str
) -> None:
    text, field = FIELDS[case]
    write("app/kustomization.yaml", text.format(p=OUTSIDE))
    write("app/cm.yaml", CM)
    err = refused(repo, ran)
    assert err.concerns == "app/kustomization.yaml"
    assert field in err.message
    assert "resolves outside the repository" in err.message


@pytest.mark.parametrize("case", list(FIELDS))
def test_a_remote_path_is_refused_naming_file_and_field(
    repo: Path, write: Writer, ran: Path, case: str
) -> None:
    text, field = FIELDS[case]
    write("app/kustomization.yaml", text.format(p=REMOTE))
    write("app/cm.yaml", CM)
    err = refused(repo, ran)
    assert err.concerns == "app/kustomization.yaml"
    assert f"remote {field} entry" in err.message
    assert REMOTE in err.message


def test_remote_generator_sources_stay_refused_when_remote_bases_are_allowed(
    repo: Path, write: Writer, ran: Path
) -> None:
    write("app/kustomization.yaml", f"configMapGenerator:\n- name: x\n  files: [{REMOTE}]\n")
    with pytest.raises(UserInputError, match=r"remote configMapGenerator\[0\]\.files entry"):
        render_app(repo, "app", "c", RenderOptions(allow_remote_bases=True))
    assert not ran.exists()


def test_file_url_base_is_refused_even_when_remote_bases_are_allowed(
    repo: Path, write: Writer, ran: Path
) -> None:
    # file:// would read another repository on the controller's disk.
    write("app/kustomization.yaml", "resources:\n- file:///var/cache/gitmoor/other//deploy\n")
    with pytest.raises(UserInputError, match="remote resources entry"):
        render_app(repo, "app", "c", RenderOptions(allow_remote_bases=True))
    assert not ran.exists()


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("resources", "resources:\n- https://example.com/org/repo\n"),
        ("configMapGenerator[0].files", "configMapGenerator:\n- name: x\n  files:\n  - {url}\n"),
    ],
)
def test_a_committed_directory_named_https_does_not_make_a_url_local(
    repo: Path, write: Writer, ran: Path, field: str, text: str
) -> None:
    # ``https://example.com/org/repo`` is the path https:/example.com/org/repo on
    # disk; kustomize would still fetch the URL, so "it exists locally" is no pass.
    write("app/https:/example.com/org/repo/kustomization.yaml", "resources: [cm.yaml]\n")
    write("app/https:/example.com/org/repo/cm.yaml", CM)
    write("app/https:/example.com/secret.txt", "A=1\n")
    write("app/kustomization.yaml", text.format(url="https://example.com/secret.txt"))
    err = refused(repo, ran)
    assert f"remote {field} entry" in err.message
    assert err.concerns == "app/kustomization.yaml"


def test_a_directory_named_https_is_fine_when_written_as_a_path(
    repo: Path, write: Writer, kubectl: str
) -> None:
    write("app/https:/cm.yaml", CM)
    write("app/kustomization.yaml", "resources:\n- ./https:/cm.yaml\n")
    result = render_app(repo, "app", "c", RenderOptions())
    assert [m.ref.name for m in result.manifests] == ["a"]


def test_a_hostile_field_in_a_base_names_the_base(repo: Path, write: Writer, ran: Path) -> None:
    write("base/kustomization.yaml", f"configMapGenerator:\n- name: x\n  envs: [{REMOTE}]\n")
    write("overlay/kustomization.yaml", "resources: [../base]\n")
    err = refused(repo, ran, app="overlay")
    assert err.concerns == "base/kustomization.yaml"
    assert r"configMapGenerator[0].envs" in err.message


def test_a_hostile_field_in_a_component_names_the_component(
    repo: Path, write: Writer, ran: Path
) -> None:
    write(
        "components/leak/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "patches:\n- path: ../../../outside/secret.txt\n",
    )
    write("app/kustomization.yaml", "resources: [cm.yaml]\ncomponents: [../components/leak]\n")
    write("app/cm.yaml", CM)
    err = refused(repo, ran)
    assert err.concerns == "components/leak/kustomization.yaml"
    assert "patches[0].path" in err.message


@pytest.mark.parametrize("field", ["helmCharts", "helmChartInflationGenerator", "helmGlobals"])
def test_helm_charts_in_kustomize_are_refused(
    repo: Path, write: Writer, ran: Path, field: str
) -> None:
    value = "{chartHome: charts}" if field == "helmGlobals" else "[{name: x, repo: https://e.x}]"
    write("app/kustomization.yaml", f"{field}: {value}\n")
    err = refused(repo, ran)
    assert err.concerns == "app/kustomization.yaml"
    assert f"{field} is not supported" in err.message
    assert "download" in err.message


def test_a_builtin_generator_config_file_is_checked(repo: Path, write: Writer, ran: Path) -> None:
    write("app/kustomization.yaml", "generators: [gen.yaml]\n")
    write(
        "app/gen.yaml",
        f"apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {{name: x}}\nfiles: [{REMOTE}]\n",
    )
    err = refused(repo, ran)
    assert err.concerns == "app/gen.yaml"
    assert "remote ConfigMapGenerator.files entry" in err.message


def test_an_inline_transformer_config_is_checked(repo: Path, write: Writer, ran: Path) -> None:
    write(
        "app/kustomization.yaml",
        "resources: [cm.yaml]\ntransformers:\n- |-\n  apiVersion: builtin\n"
        "  kind: PatchTransformer\n  metadata: {name: p}\n  path: ../../outside/secret.txt\n",
    )
    write("app/cm.yaml", CM)
    err = refused(repo, ran)
    assert err.concerns == "app/kustomization.yaml (transformers)"
    assert "PatchTransformer.path" in err.message
    assert "outside the repository" in err.message


def test_plugin_configs_in_a_generators_directory_are_checked(
    repo: Path, write: Writer, ran: Path
) -> None:
    # The configs' paths are relative to the kustomization listing the directory.
    write("app/kustomization.yaml", "generators: [gens]\n")
    write("app/gens/kustomization.yaml", "resources: [replace.yaml]\n")
    write(
        "app/gens/replace.yaml",
        "apiVersion: builtin\nkind: ReplacementTransformer\nmetadata: {name: r}\n"
        f"replacements:\n- path: {REMOTE}\n",
    )
    err = refused(repo, ran)
    assert err.concerns == "app/gens/replace.yaml"
    assert "ReplacementTransformer.replacements[0].path" in err.message


def test_a_helm_generator_config_is_refused(repo: Path, write: Writer, ran: Path) -> None:
    write("app/kustomization.yaml", "generators: [helm.yaml]\n")
    write(
        "app/helm.yaml",
        "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\n"
        "name: x\nrepo: https://charts.example.com\n",
    )
    err = refused(repo, ran)
    assert "HelmChartInflationGenerator is not supported" in err.message


def test_a_symlink_loop_named_by_a_kustomization_is_a_sentence(
    repo: Path, write: Writer, ran: Path
) -> None:
    write("app/kustomization.yaml", "configMapGenerator:\n- name: x\n  files: [loop-a]\n")
    (repo / "app" / "loop-a").symlink_to("loop-b")
    (repo / "app" / "loop-b").symlink_to("loop-a")
    err = refused(repo, ran)
    assert "loop" in err.message
    assert err.concerns is not None
    assert err.concerns.startswith("app/")


def test_a_kustomization_that_is_not_utf8_is_named(repo: Path, write: Writer, ran: Path) -> None:
    (repo / "app").mkdir()
    (repo / "app" / "kustomization.yaml").write_bytes(b"resources: [\xff\xfe]\n")
    err = refused(repo, ran)
    assert err.concerns == "app/kustomization.yaml"
    assert "not UTF-8" in err.message


def test_a_field_of_the_wrong_shape_is_a_sentence(repo: Path, write: Writer, ran: Path) -> None:
    write("app/kustomization.yaml", "patches: just-a-string\n")
    err = refused(repo, ran)
    assert err.message == "patches must be a list"
    assert err.concerns == "app/kustomization.yaml"


def test_a_huge_file_for_kustomize_is_refused_before_it_runs(
    repo: Path, write: Writer, ran: Path
) -> None:
    write("app/kustomization.yaml", "configMapGenerator:\n- name: x\n  files: [big.bin]\n")
    with (repo / "app" / "big.bin").open("wb") as f:
        f.truncate(100 * 1000 * 1000)  # sparse: no disk used
    err = refused(repo, ran)
    assert err.concerns == "app/big.bin"
    assert "larger than the 8 MiB limit" in err.message


def test_legitimate_generators_and_patches_still_render(
    repo: Path, write: Writer, kubectl: str
) -> None:
    write(
        "app/kustomization.yaml",
        "resources: [cm.yaml]\n"
        "configMapGenerator:\n- name: gen\n  files: [conf=settings.txt]\n  envs: [vars.env]\n"
        "patches:\n- path: patch.yaml\n"
        "patchesStrategicMerge:\n- |-\n  apiVersion: v1\n  kind: ConfigMap\n"
        "  metadata: {name: a}\n  data: {inline: 'yes'}\n",
    )
    write("app/cm.yaml", CM)
    write("app/settings.txt", "x=1\n")
    write("app/vars.env", "A=1\n")
    write("app/patch.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {p: q}\n")
    result = render_app(repo, "app", "c", RenderOptions())
    by_name = {m.ref.name.split("-")[0]: m.obj for m in result.manifests}
    assert by_name["a"]["data"] == {"p": "q", "inline": "yes"}
    assert by_name["gen"]["data"] == {"conf": "x=1\n", "A": "1"}
