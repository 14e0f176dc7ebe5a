"""``deploy/``: every kustomization renders with the real kustomize, holds the
objects it should, and the Deployment matches what gitmoor reads (its CLI
options, its cache directories, its HTTP server), for the controller and
for the API server. The API server's side (dry-run, Pod Security, RBAC) is in
tests/integration/deploy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from gitmoor.cli.main import app as cli

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
PACKAGE_CRDS = REPO_ROOT / "src" / "gitmoor" / "crds"
CRD_FILES = ("applications.yaml", "applicationsets.yaml", "appprojects.yaml")
ROLLOUT_CRD_FILES = (
    "rollouts.yaml",
    "analysistemplates.yaml",
    "clusteranalysistemplates.yaml",
    "analysisruns.yaml",
)


def _image() -> str:
    # `make image-pin` (image/pin.py) pins base/ and server/ to the built image's
    # manifest digest; unpinned, the tag. Both Deployments must name the same one.
    pin = re.search(
        r"^  digest: (sha256:[0-9a-f]{64})$",
        (DEPLOY / "base" / "kustomization.yaml").read_text(),
        re.MULTILINE,
    )
    return f"ghcr.io/gitmoor/gitmoor@{pin.group(1)}" if pin else "ghcr.io/gitmoor/gitmoor:0.1.0"


IMAGE = _image()
TARGETS = (
    "deploy",
    "deploy/crds",
    "deploy/base",
    "deploy/server",
    "deploy/overlays/ha",
    "deploy/overlays/namespaced",
    "deploy/overlays/impersonation",
    "deploy/rollouts",
)

BASE_KINDS = Counter(
    {
        "Namespace": 1,
        "CustomResourceDefinition": 3,
        "ServiceAccount": 1,
        "Role": 1,
        "RoleBinding": 1,
        # gitmoor-controller, and gitmoor-rollouts (the Rollout controller's rights)
        "ClusterRole": 2,
        "ClusterRoleBinding": 2,
        "Deployment": 1,
        "Service": 1,
    }
)

#: what deploy/server adds to the default install (`gitmoor server`)
SERVER_KINDS = Counter(
    {
        "ServiceAccount": 1,
        "Role": 1,
        "RoleBinding": 1,
        "ClusterRole": 2,
        "ClusterRoleBinding": 2,
        "Deployment": 1,
        "Service": 1,
    }
)

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl not found")
        pytest.skip("kubectl not found")
    return found


_rendered: dict[str, list[Obj]] = {}


def render(kubectl: str, target: str) -> list[Obj]:
    if target not in _rendered:
        out = subprocess.run(
            [kubectl, "kustomize", str(REPO_ROOT / target)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert out.returncode == 0, f"kubectl kustomize {target}:\n{out.stderr}"
        _rendered[target] = [d for d in yaml.safe_load_all(out.stdout) if d]
    return _rendered[target]


def only(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def container(objs: list[Obj], deployment: str = "gitmoor-controller") -> Obj:
    pod = only(objs, "Deployment", deployment)["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    c: Obj = pod["containers"][0]
    return c


@pytest.mark.parametrize("name", CRD_FILES)
def test_the_crd_copy_is_the_package_crd(name: str) -> None:
    # kustomize loads no file from outside its root, so deploy/ holds a copy.
    copy = DEPLOY / "crds" / name
    package = PACKAGE_CRDS / name
    assert copy.read_bytes() == package.read_bytes(), (
        f"{copy} differs from {package}: cp {package.relative_to(REPO_ROOT)} "
        f"{copy.relative_to(REPO_ROOT)}"
    )


@pytest.mark.parametrize("name", ROLLOUT_CRD_FILES)
def test_the_rollout_crd_copy_is_the_package_crd(name: str) -> None:
    copy = DEPLOY / "rollouts" / name
    package = PACKAGE_CRDS / "rollouts" / name
    assert copy.read_bytes() == package.read_bytes(), (
        f"{copy} differs from {package}: cp {package.relative_to(REPO_ROOT)} "
        f"{copy.relative_to(REPO_ROOT)}"
    )


def test_the_rollout_crds_are_an_optional_component(kubectl: str) -> None:
    # deploy/rollouts is exactly gitmoor's four Argo Rollouts CRDs, labelled as
    # gitmoor's; the default install leaves argoproj.io alone, since a cluster may
    # run Argo Rollouts with its own CRDs.
    objs = sorted(render(kubectl, "deploy/rollouts"), key=lambda o: o["metadata"]["name"])
    package = [
        yaml.safe_load((PACKAGE_CRDS / "rollouts" / n).read_text()) for n in ROLLOUT_CRD_FILES
    ]
    assert objs == sorted(package, key=lambda o: o["metadata"]["name"])
    for o in objs:
        assert o["spec"]["group"] == "argoproj.io"
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "gitmoor"
    for target in TARGETS:
        if target != "deploy/rollouts":
            assert not [
                o
                for o in render(kubectl, target)
                if o.get("spec", {}).get("group") == "argoproj.io"
            ], target


@pytest.mark.parametrize("target", TARGETS)
def test_every_kustomization_renders(kubectl: str, target: str) -> None:
    objs = render(kubectl, target)
    assert objs
    for o in objs:
        assert o.get("apiVersion") and o.get("kind") and o["metadata"].get("name"), o
        if o["kind"] not in ("Namespace", "CustomResourceDefinition") and not o["kind"].startswith(
            "Cluster"
        ):
            assert o["metadata"].get("namespace"), f"{o['kind']} {o['metadata']['name']}"


def test_the_default_install(kubectl: str) -> None:
    objs = render(kubectl, "deploy")
    assert Counter(o["kind"] for o in objs) == BASE_KINDS + SERVER_KINDS
    crds = sorted(
        (o for o in objs if o["kind"] == "CustomResourceDefinition"),
        key=lambda o: o["metadata"]["name"],
    )
    assert crds == [yaml.safe_load((PACKAGE_CRDS / n).read_text()) for n in CRD_FILES]
    assert {o["metadata"].get("namespace", "gitmoor") for o in objs} == {"gitmoor"}
    deployment = only(objs, "Deployment", "gitmoor-controller")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--replica-id" not in " ".join(container(objs)["args"])
    # Argo CD's default for its application controller: everything, cluster-wide,
    # bound to the controller's ServiceAccount only.
    role = only(objs, "ClusterRole", "gitmoor-controller")
    assert role["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    binding = only(objs, "ClusterRoleBinding", "gitmoor-controller")
    assert binding["roleRef"]["name"] == "gitmoor-controller"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gitmoor-controller", "namespace": "gitmoor"}
    ]


def test_the_rollout_controllers_cluster_role(kubectl: str) -> None:
    # Exactly what gitmoor.rollouts uses (Argo Rollouts' own ClusterRole names the
    # same kinds), bound to the controller's ServiceAccount alone; kept by the
    # impersonation overlay, whose controller may otherwise write nothing.
    for target in ("deploy", "deploy/overlays/impersonation"):
        objs = render(kubectl, target)
        assert _granted(only(objs, "ClusterRole", "gitmoor-rollouts")["rules"]) == {
            ("argoproj.io", "rollouts"): frozenset({"get", "list", "watch"}),
            ("argoproj.io", "rollouts/status"): frozenset({"update", "patch"}),
            ("argoproj.io", "rollouts/finalizers"): frozenset({"update"}),
            ("argoproj.io", "analysisruns"): frozenset(
                {"get", "list", "watch", "create", "update", "patch", "delete"}
            ),
            ("argoproj.io", "analysisruns/status"): frozenset({"update", "patch"}),
            ("argoproj.io", "analysistemplates"): frozenset({"get", "list"}),
            ("argoproj.io", "clusteranalysistemplates"): frozenset({"get", "list"}),
            ("apps", "replicasets"): frozenset(
                {"get", "list", "watch", "create", "patch", "delete"}
            ),
            ("apps", "deployments"): frozenset({"get"}),
            ("", "services"): frozenset({"get", "list", "watch", "patch"}),
            ("", "pods"): frozenset({"list", "delete"}),
            ("", "secrets"): frozenset({"get"}),
            ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"get"}),
        }
        binding = only(objs, "ClusterRoleBinding", "gitmoor-rollouts")
        assert binding["roleRef"]["name"] == "gitmoor-rollouts"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "gitmoor-controller", "namespace": "gitmoor"}
        ]
        assert "--rollouts=false" not in container(objs)["args"]


def test_the_role_in_gitmoors_namespace(kubectl: str) -> None:
    objs = render(kubectl, "deploy")
    rules = only(objs, "Role", "gitmoor-controller")["rules"]
    granted = {
        (group, resource): (frozenset(r["verbs"]), tuple(r.get("resourceNames", ())))
        for r in rules
        for group in r["apiGroups"]
        for resource in r["resources"]
    }
    # Exactly what the controller uses (the integration test runs it under this
    # Role and counts refused requests): create/delete of Applications only as
    # ApplicationSets make and delete theirs, no write of Secrets; ConfigMaps for
    # its settings and the apps' inventories.
    app_verbs = frozenset({"get", "list", "watch", "create", "patch", "delete"})
    assert granted == {
        ("gitmoor.io", "applications"): (app_verbs, ()),
        ("gitmoor.io", "applications/status"): (frozenset({"patch"}), ()),
        ("gitmoor.io", "applicationsets"): (frozenset({"get", "list", "watch", "patch"}), ()),
        ("gitmoor.io", "applicationsets/status"): (frozenset({"patch"}), ()),
        ("gitmoor.io", "applicationsets/finalizers"): (frozenset({"update"}), ()),
        ("gitmoor.io", "appprojects"): (frozenset({"get", "list", "watch"}), ()),
        ("", "secrets"): (frozenset({"get", "list", "watch"}), ()),
        ("", "configmaps"): (frozenset({"get", "list", "create", "patch", "delete"}), ()),
        ("coordination.k8s.io", "leases"): (frozenset({"create", "list", "patch", "delete"}), ()),
        ("", "events"): (frozenset({"create", "patch"}), ()),
    }
    binding = only(objs, "RoleBinding", "gitmoor-controller")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "gitmoor-controller",
    }


def test_the_deployment_runs_the_controller_hardened(kubectl: str) -> None:
    objs = render(kubectl, "deploy")
    pod = only(objs, "Deployment", "gitmoor-controller")["spec"]["template"]["spec"]
    c = container(objs)
    assert c["image"] == IMAGE
    assert pod["serviceAccountName"] == "gitmoor-controller"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    # Health checks and the Service on the port --listen opens.
    assert "--listen=0.0.0.0:8081" in c["args"]
    assert c["ports"] == [{"name": "http", "containerPort": 8081, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    service = only(objs, "Service", "gitmoor-controller")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8081, "targetPort": "http", "protocol": "TCP"}
    ]
    labels = only(objs, "Deployment", "gitmoor-controller")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert service["spec"]["selector"].items() <= labels.items()
    # gitmoor's own tracking label would make its watch cache pick the pod up.
    assert "app.kubernetes.io/instance" not in labels


@pytest.mark.parametrize("deployment", ["gitmoor-controller", "gitmoor-server"])
def test_everything_gitmoor_writes_is_on_an_empty_dir(kubectl: str, deployment: str) -> None:
    objs = render(kubectl, "deploy")
    pod = only(objs, "Deployment", deployment)["spec"]["template"]["spec"]
    c = container(objs, deployment)
    env = {e["name"]: e.get("value") for e in c["env"]}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = [Path(m["mountPath"]) for m in c["volumeMounts"] if m["name"] in empty_dirs]
    # GITMOOR_CACHE_DIR: git mirrors and checkouts (source/cache.py); TMPDIR:
    # helm's per-render homes, ssh key files; HOME and XDG_CACHE_HOME: any tool.
    for var in ("GITMOOR_CACHE_DIR", "TMPDIR", "HOME", "XDG_CACHE_HOME"):
        assert env.get(var), var
        path = Path(env[var])
        assert any(path == m or m in path.parents for m in mounts), f"{var}={path}"


def _cli_accepts(args: list[str], name: str = "controller") -> dict[str, Any]:
    """Parse ``gitmoor ARGS`` as the CLI would, without running it; the options."""
    group = typer.main.get_command(cli)
    i = args.index(name)
    ctx = group.make_context("gitmoor", args[: i + 1])
    command = group.get_command(ctx, name)
    assert command is not None
    sub = command.make_context(name, args[i + 1 :], parent=ctx)
    return {**ctx.params, **sub.params}


@pytest.mark.parametrize("target", ["deploy", *(t for t in TARGETS if "/overlays/" in t)])
def test_the_container_args_are_options_the_cli_takes(kubectl: str, target: str) -> None:
    c = container(render(kubectl, target))
    assert c["command"] == ["gitmoor"]
    # The kubelet expands $(VAR) from the container's env and leaves an unknown
    # one as it is: every reference must be defined.
    env = {e["name"]: e for e in c["env"]}
    refs = {m for a in c["args"] for m in re.findall(r"\$\(([A-Z_]+)\)", a)}
    assert refs <= set(env), refs - set(env)
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    expanded = [re.sub(r"\$\(([A-Z_]+)\)", lambda m: f"x-{m[1].lower()}", a) for a in c["args"]]
    params = _cli_accepts(expanded)
    assert params["apps_namespace"] == "x-pod_namespace"
    assert params["listen"] == "0.0.0.0:8081"


def test_the_ha_overlay_runs_two_sharded_replicas(kubectl: str) -> None:
    objs = render(kubectl, "deploy/overlays/ha")
    assert Counter(o["kind"] for o in objs) == BASE_KINDS + Counter({"PodDisruptionBudget": 1})
    deployment = only(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    c = container(objs)
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    params = _cli_accepts([a.replace("$(POD_NAME)", "pod-a") for a in c["args"]])
    assert params["replica_id"] == "pod-a"
    pdb = only(objs, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_namespaced_overlay_grants_nothing_cluster_wide(kubectl: str) -> None:
    objs = render(kubectl, "deploy/overlays/namespaced")
    kinds = Counter(o["kind"] for o in objs)
    assert kinds["ClusterRoleBinding"] == 0
    # The one ClusterRole is only ever bound by RoleBindings, in listed namespaces.
    assert [o["metadata"]["name"] for o in objs if o["kind"] == "ClusterRole"] == [
        "gitmoor-destination"
    ]
    listed = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"} - {"gitmoor"}
    assert listed
    destinations = [
        o
        for o in objs
        if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == "gitmoor-destination"
    ]
    assert {o["metadata"]["namespace"] for o in destinations} == listed
    for o in destinations:
        assert o["roleRef"]["kind"] == "ClusterRole"
        assert o["subjects"] == [
            {"kind": "ServiceAccount", "name": "gitmoor-controller", "namespace": "gitmoor"}
        ]
    # Its own namespace keeps the base's Role; the controller is the same, but
    # for the Rollout controller, which needs cluster-wide rights, turned off.
    only(objs, "Role", "gitmoor-controller")
    c = container(objs)
    assert c["args"][-1] == "--rollouts=false"
    assert {**c, "args": c["args"][:-1]} == container(render(kubectl, "deploy"))
    assert _cli_accepts(c["args"])["rollouts"] == "false"


def test_an_overlay_can_move_the_install_to_another_namespace(kubectl: str, tmp_path: Path) -> None:
    # The base's `namespace:` plus the downward API: one line moves everything,
    # the ServiceAccount subjects included, and the controller and server follow.
    deploy = os.path.relpath(DEPLOY, tmp_path)  # kustomize takes no absolute base
    (tmp_path / "kustomization.yaml").write_text(
        f"namespace: gitops\nresources:\n- {deploy}/crds\n- {deploy}/base\n- {deploy}/server\n"
    )
    out = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert only(objs, "Namespace")["metadata"]["name"] == "gitops"
    assert {o["metadata"]["namespace"] for o in objs if "namespace" in o["metadata"]} == {"gitops"}
    bindings = [o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == 6
    for binding in bindings:
        assert [s["namespace"] for s in binding["subjects"]] == ["gitops"]


def test_the_impersonation_overlay_writes_nothing_as_the_controller(kubectl: str) -> None:
    objs = render(kubectl, "deploy/overlays/impersonation")
    assert Counter(o["kind"] for o in objs) == BASE_KINDS
    # Reads everywhere, and impersonating ServiceAccounts: no write verb, no
    # impersonation of users or groups (which could claim system:masters).
    assert only(objs, "ClusterRole", "gitmoor-controller")["rules"] == [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
    ]
    assert only(objs, "Role", "gitmoor-controller") == only(
        render(kubectl, "deploy"), "Role", "gitmoor-controller"
    )
    assert container(objs) == container(render(kubectl, "deploy"))
    # The example team is applied apart (its AppProject needs the CRD first).
    team = [
        d
        for d in yaml.safe_load_all(
            (DEPLOY / "overlays" / "impersonation" / "team-a.yaml").read_text()
        )
        if d
    ]
    project = only(team, "AppProject", "team-a")
    accounts = project["spec"]["destinationServiceAccounts"]
    assert [a["defaultServiceAccount"] for a in accounts] == ["gitmoor-deployer"]
    assert only(team, "ServiceAccount", "gitmoor-deployer")


# ---------------------------------------------------------------- the API server


def test_the_server_runs_the_api_hardened_behind_its_own_service(kubectl: str) -> None:
    objs = render(kubectl, "deploy")
    deployment = only(objs, "Deployment", "gitmoor-server")
    pod = deployment["spec"]["template"]["spec"]
    c = container(objs, "gitmoor-server")
    assert c["image"] == IMAGE
    assert pod["serviceAccountName"] == "gitmoor-server"
    # Sessions live in the process: one replica (two would need sticky routing).
    assert deployment["spec"]["replicas"] == 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # Live while the loop runs; ready once the Application watch has listed.
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}

    # The args are options `gitmoor server` takes; $(VAR)s are defined.
    assert c["command"] == ["gitmoor"]
    env = {e["name"]: e for e in c["env"]}
    refs = {m for a in c["args"] for m in re.findall(r"\$\(([A-Z_]+)\)", a)}
    assert refs <= set(env), refs - set(env)
    expanded = [re.sub(r"\$\(([A-Z_]+)\)", lambda m: f"x-{m[1].lower()}", a) for a in c["args"]]
    params = _cli_accepts(expanded, "server")
    assert params["apps_namespace"] == "x-pod_namespace"
    assert params["listen"] == "0.0.0.0:8080"

    # Each Service selects its own pods only: the API is not served by controller
    # pods, nor webhooks by server pods.
    service = only(objs, "Service", "gitmoor-server")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    controller_labels = only(objs, "Deployment", "gitmoor-controller")["spec"]["template"][
        "metadata"
    ]["labels"]
    assert service["spec"]["selector"].items() <= server_labels.items()
    assert not service["spec"]["selector"].items() <= controller_labels.items()
    controller_service = only(objs, "Service", "gitmoor-controller")
    assert not controller_service["spec"]["selector"].items() <= server_labels.items()
    assert "app.kubernetes.io/instance" not in server_labels


def _granted(rules: list[Obj]) -> dict[tuple[str, str], frozenset[str]]:
    out: dict[tuple[str, str], frozenset[str]] = {}
    for r in rules:
        assert "resourceNames" not in r and "nonResourceURLs" not in r, r
        for group in r["apiGroups"]:
            for resource in r["resources"]:
                out[(group, resource)] = out.get((group, resource), frozenset()) | set(r["verbs"])
    return out


def test_the_servers_role_in_gitmoors_namespace(kubectl: str) -> None:
    objs = render(kubectl, "deploy")
    # The write routes (Applications, AppProjects, repository and cluster Secrets),
    # the accounts (gitmoor-cm, gitmoor-secret), the settings watches, the audit
    # Events. No Leases: the server never shards.
    everything = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
    assert _granted(only(objs, "Role", "gitmoor-server")["rules"]) == {
        ("gitmoor.io", "applications"): everything,
        ("gitmoor.io", "applications/status"): frozenset({"patch"}),
        ("gitmoor.io", "appprojects"): everything,
        ("", "secrets"): everything,
        ("", "configmaps"): everything,
        ("", "events"): frozenset({"create", "list"}),
    }
    binding = only(objs, "RoleBinding", "gitmoor-server")
    assert binding["roleRef"]["name"] == "gitmoor-server"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gitmoor-server", "namespace": "gitmoor"}
    ]


def test_the_servers_cluster_rights_are_reads_and_the_few_writes_it_makes(kubectl: str) -> None:
    objs = render(kubectl, "deploy")
    # Reads for the tree, live manifests, Events, logs and the diff's watch cache.
    assert _granted(only(objs, "ClusterRole", "gitmoor-server")["rules"]) == {
        ("*", "*"): frozenset({"get", "list", "watch"})
    }
    # The diff's server-side dry-runs (patch, create) and cascade delete; never
    # update, deletecollection, escalate, bind, nor impersonating users or groups.
    assert _granted(only(objs, "ClusterRole", "gitmoor-server-write")["rules"]) == {
        ("*", "*"): frozenset({"create", "patch", "delete"}),
        ("", "serviceaccounts"): frozenset({"impersonate"}),
    }
    for name in ("gitmoor-server", "gitmoor-server-write"):
        binding = only(objs, "ClusterRoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": name,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "gitmoor-server", "namespace": "gitmoor"}
        ]
    # The controller's ServiceAccount gains nothing from the server's roles.
    for o in objs:
        if o["kind"].endswith("Binding") and o["roleRef"]["name"].startswith("gitmoor-server"):
            assert all(s["name"] == "gitmoor-server" for s in o["subjects"])
