"""`gitmoor cluster add/list/rm` end to end, as a subprocess, against two real
control planes: the global --kubeconfig names the home cluster (where the
Secret goes), the subcommand's --from-kubeconfig the cluster being added."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from gitmoor.cli.main import app
from gitmoor.settings.clusters import list_clusters, load_cluster_config
from gitmoor.testenv import free_port

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.testenv import ControlPlane

# The console script `uv run gitmoor` runs. Until cli/main.py registers the
# sub-app, an equivalent shim registers it the way main will.
_SCRIPT = Path(sys.executable).parent / "gitmoor"
_SHIM = textwrap.dedent(
    """
    import sys
    from gitmoor.cli.main import app
    from gitmoor.cli.cluster_cmd import cluster_cmd
    app.add_typer(cluster_cmd, name="cluster")
    sys.argv[0] = "gitmoor"
    app()
    """
)
_REGISTERED = any(g.name == "cluster" for g in app.registered_groups)
GITMOOR = [str(_SCRIPT)] if _REGISTERED else [sys.executable, "-c", _SHIM]


def gitmoor(kubeconfig: Path, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GITMOOR, "--kubeconfig", str(kubeconfig), "--apps-namespace", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def key_material(kubeconfig: Path) -> list[str]:
    """The private key of a kubeconfig's user in every form it could leak in: the
    base64 of the PEM (client-key-data, Argo CD's keyData) and the PEM's body lines."""
    raw: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    b64 = raw["users"][0]["user"]["client-key-data"]
    pem = base64.b64decode(b64).decode()
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [b64, *body]


def test_add_list_rm(
    kubeconfig: Path, namespace: str, second_plane: ControlPlane, control_plane: ControlPlane
) -> None:
    added = gitmoor(
        kubeconfig,
        namespace,
        "cluster",
        "add",
        "second",
        "--from-kubeconfig",
        str(second_plane.kubeconfig),
    )
    assert added.returncode == 0, added.stderr
    assert "cluster second" in added.stdout and second_plane.server in added.stdout
    assert f"Secret {namespace}/cluster-second-" in added.stdout

    # The spelling: the subcommand's own --kubeconfig/--context name the new cluster.
    context = yaml.safe_load(second_plane.kubeconfig.read_text())["current-context"]
    alias = gitmoor(
        kubeconfig,
        namespace,
        "cluster",
        "add",
        "second-again",
        "--kubeconfig",
        str(second_plane.kubeconfig),
        "--context",
        context,
    )
    assert alias.returncode == 0, alias.stderr

    keys = key_material(second_plane.kubeconfig)
    table = gitmoor(kubeconfig, namespace, "cluster", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SERVER", "SECRET"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["second", second_plane.server],
        ["second-again", second_plane.server],
    ]
    assert control_plane.server not in table.stdout
    for fmt in ("json", "yaml"):
        listed = gitmoor(kubeconfig, namespace, "cluster", "list", "-o", fmt)
        assert listed.returncode == 0, listed.stderr
        doc = json.loads(listed.stdout) if fmt == "json" else yaml.safe_load(listed.stdout)
        assert [c["name"] for c in doc] == ["second", "second-again"]
        assert set(doc[0]) == {"name", "server", "secret"}
        for out in (listed.stdout, listed.stderr):
            assert not any(k in out for k in keys), f"key material in `cluster list -o {fmt}`"
            assert "keyData" not in out and "config" not in out
    assert not any(k in table.stdout + table.stderr + added.stdout + added.stderr for k in keys)

    removed = gitmoor(kubeconfig, namespace, "cluster", "rm", "second")
    assert removed.returncode == 0, removed.stderr
    assert "cluster second removed" in removed.stdout
    again = gitmoor(kubeconfig, namespace, "cluster", "rm", "second")
    assert again.returncode == 1
    assert "cluster second is not registered" in again.stderr
    listed = gitmoor(kubeconfig, namespace, "cluster", "list", "-o", "json")
    assert [c["name"] for c in json.loads(listed.stdout)] == ["second-again"]


async def test_added_cluster_holds_the_kubeconfig_credentials(
    kube: KubeClient, kubeconfig: Path, namespace: str, second_plane: ControlPlane
) -> None:
    user = second_plane.mint_kubeconfig("gitmoor-cli-user", ["system:masters"])
    r = gitmoor(kubeconfig, namespace, "cluster", "add", "second", "--from-kubeconfig", str(user))
    assert r.returncode == 0, r.stderr
    cfg = await load_cluster_config(kube, "second", namespace)
    raw = yaml.safe_load(user.read_text())
    assert cfg.server == second_plane.server
    assert cfg.client_key_pem == base64.b64decode(raw["users"][0]["user"]["client-key-data"])
    assert cfg.ca_pem == base64.b64decode(
        raw["clusters"][0]["cluster"]["certificate-authority-data"]
    )


@pytest.mark.parametrize(
    ("name", "says"),
    [("in-cluster", "cannot be registered"), ("", "must not be empty")],
)
def test_reserved_and_empty_names_are_refused(
    kubeconfig: Path, namespace: str, second_plane: ControlPlane, name: str, says: str
) -> None:
    r = gitmoor(
        kubeconfig,
        namespace,
        "cluster",
        "add",
        name,
        "--from-kubeconfig",
        str(second_plane.kubeconfig),
    )
    assert r.returncode == 2
    assert says in r.stderr
    rm = gitmoor(kubeconfig, namespace, "cluster", "rm", "in-cluster")
    assert rm.returncode == 2 and "cannot be removed" in rm.stderr


def _kubeconfig(tmp_path: Path, server: str, user: dict[str, Any]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


async def test_exec_plugins_are_refused_clearly(
    kube: KubeClient, kubeconfig: Path, namespace: str, tmp_path: Path, second_plane: ControlPlane
) -> None:
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "aws",
            "args": ["eks", "get-token"],
        }
    }
    cfg = _kubeconfig(tmp_path, second_plane.server, exec_user)
    r = gitmoor(kubeconfig, namespace, "cluster", "add", "eks", "--from-kubeconfig", str(cfg))
    assert r.returncode == 2
    assert "exec/auth-provider plugin" in r.stderr and "'ctx'" in r.stderr
    assert await list_clusters(kube, namespace) == []


async def test_an_unreachable_cluster_is_refused_unless_told_not_to_verify(
    kube: KubeClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = _kubeconfig(tmp_path, server, {"token": "not-a-real-token"})
    r = gitmoor(kubeconfig, namespace, "cluster", "add", "gone", "--from-kubeconfig", str(cfg))
    assert r.returncode == 2
    assert "cannot use context 'ctx'" in r.stderr and server in r.stderr
    assert "--no-verify" in r.stderr
    assert "not-a-real-token" not in r.stderr
    assert await list_clusters(kube, namespace) == []

    r = gitmoor(
        kubeconfig,
        namespace,
        "cluster",
        "add",
        "gone",
        "--from-kubeconfig",
        str(cfg),
        "--no-verify",
    )
    assert r.returncode == 0, r.stderr
    assert [c.server for c in await list_clusters(kube, namespace)] == [server]


def test_an_unknown_output_format_is_refused(kubeconfig: Path, namespace: str) -> None:
    r = gitmoor(kubeconfig, namespace, "cluster", "list", "-o", "xml")
    assert r.returncode == 2 and "table, json or yaml" in r.stderr
