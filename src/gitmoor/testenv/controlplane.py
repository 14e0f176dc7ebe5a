"""A real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, as local processes.

The binaries come from ``testenv/build.sh`` (built from the official Go
modules into a versioned cache). Nothing here imitates the Kubernetes API:
this module only starts, probes and stops the real processes.

Start order is etcd, then the API server, then the controllers and kwok in
parallel; stop order is the reverse, each step waiting for the previous one.
Signalled all at once, the API server spends about 40 s retrying etcd before it
exits (measured; see shared/ARCHITECTURE.md).

Probing uses httpx directly: this is process supervision of a server we just
launched, not API use, which goes through ``gitmoor.kube``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import yaml

from gitmoor.testenv import pki

log = logging.getLogger("gitmoor.testenv")

K8S_VERSION = "v1.37.2"
STATE_FILE = "state.json"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
#: what ``kubectl logs`` shows for any container of any pod in this cluster (kwok
#: serves it from one file; the pods run nothing that could write a log)
POD_LOG = (
    "gitmoor testenv: this container is simulated by kwok",
    "gitmoor testenv: the same log is served for every container",
    "gitmoor testenv: ready",
)
POD_LOG_TIME = "2026-01-01T00:00:00.000000000Z"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True, slots=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_stages: Path

    @property
    def tools_dir(self) -> Path:
        return self.kwok.parent


def _repo_build_script() -> Path | None:
    # In a source checkout (editable install) the build script sits at
    # <repo>/testenv/build.sh, three levels above this package.
    candidate = Path(__file__).resolve().parents[3] / "testenv" / "build.sh"
    return candidate if candidate.is_file() else None


def find_binaries(*, build: bool = True) -> Binaries:
    """The control plane's binaries, building them first when they are missing.

    ``GITMOOR_K8S_BIN`` and ``GITMOOR_TOOLS_BIN`` name the directories
    explicitly; otherwise ``testenv/build.sh`` is asked (it returns in
    milliseconds when the cache is warm and builds what is missing).
    """
    k8s_env, tools_env = os.environ.get("GITMOOR_K8S_BIN"), os.environ.get("GITMOOR_TOOLS_BIN")
    if k8s_env and tools_env:
        k8s_dir, tools_dir = Path(k8s_env), Path(tools_env)
    else:
        script = _repo_build_script()
        if script is None or not build:
            raise ControlPlaneError(
                "control plane binaries not found: set GITMOOR_K8S_BIN and GITMOOR_TOOLS_BIN "
                "or run testenv/build.sh from a gitmoor checkout"
            )
        proc = subprocess.run(
            ["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False
        )  # build progress goes to stderr, straight to the user
        if proc.returncode != 0:
            raise ControlPlaneError(f"testenv/build.sh failed with exit code {proc.returncode}")
        k8s_part, _, tools_part = proc.stdout.strip().splitlines()[-1].partition(":")
        k8s_dir, tools_dir = Path(k8s_part), Path(tools_part)
    bins = Binaries(
        etcd=k8s_dir / "etcd",
        kube_apiserver=k8s_dir / "kube-apiserver",
        kube_controller_manager=k8s_dir / "kube-controller-manager",
        kube_scheduler=k8s_dir / "kube-scheduler",
        kwok=tools_dir / "kwok",
        kwok_stages=tools_dir / "kwok-stages-fast.yaml",
    )
    missing = [str(p) for p in asdict(bins).values() if not Path(p).exists()]
    if missing:
        raise ControlPlaneError(f"control plane binaries missing: {', '.join(missing)}")
    return bins


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes; its parent reaps it.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _pid_runs(pid: int, binary: str) -> bool:
    """True when ``pid`` is alive and still runs ``binary`` (guards against PID reuse)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmdline).name == Path(binary).name


def kubeconfig_yaml(
    server: str, ca_pem: bytes, user: str, cert: pki.KeyPair, *, cluster: str = "gitmoor-local"
) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert.cert_pem),
                    "client-key-data": b64(cert.key_pem),
                },
            }
        ],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
    }
    return yaml.safe_dump(cfg, sort_keys=False)


# --------------------------------------------------------------------------- the control plane


@dataclass
class _Proc:
    name: str
    pid: int
    binary: str
    popen: subprocess.Popen[bytes] | None = None


@dataclass
class ControlPlane:
    """One local control plane; several may run side by side, each in its own dir.

    ``home`` holds what users need (``kubeconfig``, ``state.json``, ``logs/``);
    the data (etcd, certificates) lives in a temporary directory that ``stop``
    removes together with ``home``'s generated files.
    """

    home: Path
    nodes: int = 1
    name: str = "gitmoor-local"

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.data_dir: Path | None = None
        self.server = ""
        self.ports: dict[str, int] = {}
        self.procs: list[_Proc] = []
        self._ca: pki.KeyPair | None = None
        self._args: dict[str, tuple[Path, list[str]]] = {}

    # -- paths
    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def ca_file(self) -> Path:
        return self.home / "ca.crt"

    # -- lifecycle
    @classmethod
    def load(cls, home: Path) -> ControlPlane | None:
        """The control plane recorded in ``home``'s state file, running or not."""
        state_path = home / STATE_FILE
        if not state_path.is_file():
            return None
        state = json.loads(state_path.read_text())
        cp = cls(home=home, nodes=state.get("nodes", 1), name=state.get("name", "gitmoor-local"))
        cp.data_dir = Path(state["data_dir"])
        cp.server = state["server"]
        cp.ports = state["ports"]
        cp.procs = [_Proc(p["name"], p["pid"], p["binary"]) for p in state["procs"]]
        ca = cp.data_dir / "pki" / "ca"
        with contextlib.suppress(OSError):
            cp._ca = pki.KeyPair((ca / "ca.crt").read_bytes(), (ca / "ca.key").read_bytes())
        return cp

    @classmethod
    def attach(cls, home: Path) -> ControlPlane | None:
        """The control plane already running from ``home``, or None if there is none."""
        cp = cls.load(home)
        return cp if cp is not None and cp.healthy() else None

    @classmethod
    def ensure(
        cls, home: Path, *, nodes: int = 1, name: str = "gitmoor-local"
    ) -> tuple[ControlPlane, bool]:
        """The healthy control plane running from ``home``, or a new one started
        there (a dead one's leftovers stopped first); and whether it was started."""
        running = cls.attach(home)
        if running is not None:
            return running, False
        stale = cls.load(home)
        if stale is not None:
            stale.stop()
        cp = cls(home=home, nodes=nodes, name=name)
        cp.start()
        return cp, True

    def healthy(self) -> bool:
        if self._ca is None or not all(_pid_runs(p.pid, p.binary) for p in self.procs):
            return False
        try:
            self._probe_readyz(timeout=5)
        except ControlPlaneError:
            return False
        return True

    def start(self, binaries: Binaries | None = None, *, timeout: float = 120) -> None:
        bins = binaries or find_binaries()
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.data_dir = Path(tempfile.mkdtemp(prefix="gitmoor-cp-"))
        try:
            self._write_pki()
            self._start_etcd(bins, timeout)
            self._start_apiserver(bins, timeout)
            self._start_controllers(bins)
            self._create_nodes(timeout)
            self._wait_leases(timeout)
            self._save_state()
        except BaseException:
            self.stop()
            raise
        log.info(
            "event=control_plane_ready server=%s seconds=%.2f", self.server, time.monotonic() - t0
        )

    def stop(self) -> None:
        """Stop in reverse order and remove every file the start made."""
        by_name = {p.name: p for p in self.procs}
        groups = [
            ["kwok", "kube-scheduler", "kube-controller-manager"],
            ["kube-apiserver"],
            ["etcd"],
        ]
        for group in groups:
            procs = [by_name[n] for n in group if n in by_name]
            for p in procs:
                if _pid_runs(p.pid, p.binary) or (p.popen and p.popen.poll() is None):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for p in procs:
                self._wait_exit(p, deadline)
        self.procs = []
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        for name in (STATE_FILE, "kubeconfig", "ca.crt"):
            (self.home / name).unlink(missing_ok=True)
        shutil.rmtree(self.home / "users", ignore_errors=True)
        shutil.rmtree(self.log_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.home.rmdir()

    @staticmethod
    def _wait_exit(p: _Proc, deadline: float) -> None:
        while time.monotonic() < deadline:
            if p.popen is not None:
                if p.popen.poll() is not None:
                    return
            elif not _pid_alive(p.pid):
                return
            time.sleep(0.05)
        log.warning("event=kill name=%s pid=%d reason=no_exit_after_sigterm", p.name, p.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        if p.popen is not None:
            p.popen.wait(5)

    def restart_apiserver(self, *, down_for: float = 0.0, timeout: float = 60) -> None:
        """Stop kube-apiserver (SIGTERM), keep it down ``down_for`` seconds, start it
        again with the same flags and wait for /readyz: an outage as clients see it."""
        proc = next(p for p in self.procs if p.name == "kube-apiserver")
        binary, args = self._args["kube-apiserver"]
        os.kill(proc.pid, signal.SIGTERM)
        # It drains long-running requests (watches) first; past 10 s, kill it.
        self._wait_exit(proc, time.monotonic() + 10)
        self.procs.remove(proc)
        if down_for > 0:
            time.sleep(down_for)
        new = self._spawn("kube-apiserver", binary, args)
        self._probe_readyz(timeout, new)
        if (self.home / STATE_FILE).exists():
            self._save_state()

    # -- users
    def mint_kubeconfig(self, user: str, groups: list[str] | tuple[str, ...] = ()) -> Path:
        """A kubeconfig that authenticates as ``user`` in ``groups`` (client certificate)."""
        assert self._ca is not None
        cert = pki.issue(self._ca, user, orgs=groups)
        path = self.home / "users" / f"{user}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        pki.write_private(
            path,
            kubeconfig_yaml(self.server, self._ca.cert_pem, user, cert, cluster=self.name).encode(),
        )
        return path

    def admin_client(self, timeout: float = 10) -> httpx.Client:
        assert self.data_dir is not None
        admin = self.data_dir / "pki" / "admin"
        ctx = ssl.create_default_context(cafile=str(admin.parent / "ca" / "ca.crt"))
        ctx.load_cert_chain(str(admin / "tls.crt"), str(admin / "tls.key"))
        return httpx.Client(base_url=self.server, verify=ctx, timeout=timeout)

    # -- steps
    def _pki_dir(self, name: str) -> Path:
        assert self.data_dir is not None
        d = self.data_dir / "pki" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _write_keypair(self, name: str, kp: pki.KeyPair) -> Path:
        d = self._pki_dir(name)
        (d / "tls.crt").write_bytes(kp.cert_pem)
        pki.write_private(d / "tls.key", kp.key_pem)
        return d

    def _write_pki(self) -> None:
        ca = pki.new_ca(f"{self.name}-ca")
        self._ca = ca
        d = self._pki_dir("ca")
        (d / "ca.crt").write_bytes(ca.cert_pem)
        pki.write_private(d / "ca.key", ca.key_pem)
        self.ca_file.write_bytes(ca.cert_pem)
        self.ports = {
            "etcd": free_port(),
            "etcd_peer": free_port(),
            "apiserver": free_port(),
            "controller_manager": free_port(),
            "scheduler": free_port(),
            "kwok": free_port(),
        }
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self._write_keypair(
            "apiserver",
            pki.issue(
                ca,
                "kube-apiserver",
                server=True,
                dns_names=[
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    "kubernetes.default.svc.cluster.local",
                ],
                ip_addresses=["127.0.0.1", "10.0.0.1"],
            ),
        )
        sa_key, sa_pub = pki.new_service_account_key()
        sa = self._pki_dir("sa")
        pki.write_private(sa / "sa.key", sa_key)
        (sa / "sa.pub").write_bytes(sa_pub)
        # Identities as kubeadm gives them; system:masters only for the admin.
        clients = {
            "admin": ("kubernetes-admin", ["system:masters"]),
            "controller-manager": ("system:kube-controller-manager", []),
            "scheduler": ("system:kube-scheduler", []),
            "kwok": ("kwok", ["system:masters"]),
        }
        for name, (cn, orgs) in clients.items():
            kp = pki.issue(ca, cn, orgs=orgs)
            self._write_keypair(name, kp)
            cfg = kubeconfig_yaml(self.server, ca.cert_pem, cn, kp, cluster=self.name)
            pki.write_private(self._pki_dir(name) / "kubeconfig", cfg.encode())
        admin_cfg = (self._pki_dir("admin") / "kubeconfig").read_bytes()
        pki.write_private(self.kubeconfig, admin_cfg)

    def _spawn(self, name: str, binary: Path, args: list[str]) -> _Proc:
        logf = (self.log_dir / f"{name}.log").open("ab")
        # A new session: Ctrl-C in the terminal that ran `make cluster` must not
        # take the cluster down, and stop() signals each process on its own.
        popen = subprocess.Popen(
            [str(binary), *args],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logf.close()
        proc = _Proc(name, popen.pid, str(binary), popen)
        self.procs.append(proc)
        self._args[name] = (binary, args)
        log.debug("event=spawn name=%s pid=%d", name, popen.pid)
        return proc

    def _check_running(self, proc: _Proc) -> None:
        if proc.popen is not None and proc.popen.poll() is not None:
            tail = (self.log_dir / f"{proc.name}.log").read_text(errors="replace")[-2000:]
            raise ControlPlaneError(
                f"{proc.name} exited with code {proc.popen.returncode}:\n{tail}"
            )

    def _start_etcd(self, bins: Binaries, timeout: float) -> None:
        assert self.data_dir is not None
        client = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        proc = self._spawn(
            "etcd",
            bins.etcd,
            [
                "--name=default",
                f"--data-dir={self.data_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--log-level=warn",
                # A throw-away test cluster: fsync buys nothing and costs write latency.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
            ],
        )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1) as c:
            while True:
                self._check_running(proc)
                with contextlib.suppress(httpx.HTTPError):
                    if c.get(f"{client}/health").json().get("health") == "true":
                        return
                if time.monotonic() > deadline:
                    raise ControlPlaneError("etcd did not become healthy")
                time.sleep(0.05)

    def _start_apiserver(self, bins: Binaries, timeout: float) -> None:
        assert self.data_dir is not None
        pk = self.data_dir / "pki"
        proc = self._spawn(
            "kube-apiserver",
            bins.kube_apiserver,
            [
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                # The endpoint reconciler refuses a loopback advertise address; nothing
                # here needs the `kubernetes` Service's endpoints (ARCHITECTURE.md).
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pk / 'apiserver' / 'tls.crt'}",
                f"--tls-private-key-file={pk / 'apiserver' / 'tls.key'}",
                f"--client-ca-file={pk / 'ca' / 'ca.crt'}",
                f"--service-account-key-file={pk / 'sa' / 'sa.pub'}",
                f"--service-account-signing-key-file={pk / 'sa' / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--cert-dir={pk / 'apiserver'}",
                "--profiling=false",
                "--event-ttl=1h",
            ],
        )
        self._probe_readyz(timeout, proc)

    def _probe_readyz(self, timeout: float, proc: _Proc | None = None) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        with self.admin_client(timeout=2) as c:
            while True:
                if proc is not None:
                    self._check_running(proc)
                try:
                    r = c.get("/readyz")
                    if r.status_code == 200:
                        return
                    last = f"HTTP {r.status_code}"
                except httpx.HTTPError as e:
                    last = type(e).__name__
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"kube-apiserver not ready at {self.server}: {last}")
                time.sleep(0.1)

    def _start_controllers(self, bins: Binaries) -> None:
        assert self.data_dir is not None
        pk = self.data_dir / "pki"
        cm_cfg = str(pk / "controller-manager" / "kubeconfig")
        self._spawn(
            "kube-controller-manager",
            bins.kube_controller_manager,
            [
                f"--kubeconfig={cm_cfg}",
                f"--authentication-kubeconfig={cm_cfg}",
                f"--authorization-kubeconfig={cm_cfg}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['controller_manager']}",
                # One instance, so nothing to elect; and with an election it exits
                # when the API server is down longer than the renew deadline (10 s),
                # where a real cluster's kubelet would start it again. Without one it
                # reconnects: the outage tests need Deployments to roll out after it.
                "--leader-elect=false",
                f"--service-account-private-key-file={pk / 'sa' / 'sa.key'}",
                f"--root-ca-file={pk / 'ca' / 'ca.crt'}",
                f"--cluster-signing-cert-file={pk / 'ca' / 'ca.crt'}",
                f"--cluster-signing-key-file={pk / 'ca' / 'ca.key'}",
                "--use-service-account-credentials=true",
                "--cluster-name=" + self.name,
                # Default QPS (20) makes a 1,000-pod rollout crawl; a test cluster can go faster.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )
        sch_cfg = str(pk / "scheduler" / "kubeconfig")
        self._spawn(
            "kube-scheduler",
            bins.kube_scheduler,
            [
                f"--kubeconfig={sch_cfg}",
                f"--authentication-kubeconfig={sch_cfg}",
                f"--authorization-kubeconfig={sch_cfg}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false",
            ],
        )
        stages = self._kwok_stages(bins)
        self._spawn(
            "kwok",
            bins.kwok,
            [
                f"--kubeconfig={pk / 'kwok' / 'kubeconfig'}",
                f"--config={stages}",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
                # The port kwok's node stage writes into each Node's
                # status.daemonEndpoints.kubeletEndpoint: where the API server sends
                # pods/log (and exec, port-forward) for pods on these nodes. Left at
                # 0, the API server dials the kubelet default 10250 and fails. kwok
                # serves it with a self-signed certificate, which the API server
                # accepts: without --kubelet-certificate-authority it does not
                # verify kubelets' serving certificates.
                f"--node-port={self.ports['kwok']}",
                "--node-lease-duration-seconds=40",
            ],
        )

    def _kwok_stages(self, bins: Binaries) -> Path:
        """kwok's configuration: its node stages, gitmoor's pod stages
        (pod-stages.yaml) and the container log every pod serves (``POD_LOG``)."""
        assert self.data_dir is not None
        docs = [d for d in yaml.safe_load_all(bins.kwok_stages.read_text()) if d]
        node_stages = [d for d in docs if d["spec"]["resourceRef"]["kind"] != "Pod"]
        ours = resources.files("gitmoor.testenv").joinpath("pod-stages.yaml").read_text()
        pod_stages = [d for d in yaml.safe_load_all(ours) if d]
        path = self.data_dir / "kwok-stages.yaml"
        path.write_text(
            yaml.safe_dump_all([*node_stages, *pod_stages, self._pod_logs()], sort_keys=False)
        )
        return path

    def _pod_logs(self) -> dict[str, Any]:
        """kwok's ClusterLogs: every container of every pod serves ``POD_LOG``.

        Nothing runs in these pods, so there is no output of their own; kwok's
        kubelet endpoint answers ``/containerLogs`` from a file in the CRI log
        format (``<RFC 3339 time> stdout F <line>``, what a container runtime
        writes and the kubelet reads), so ``kubectl logs`` and the
        ``pods/log`` subresource go the real way: API server, then node."""
        assert self.data_dir is not None
        log_file = self.data_dir / "pod.log"
        log_file.write_text("".join(f"{POD_LOG_TIME} stdout F {line}\n" for line in POD_LOG))
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "gitmoor-pod-log"},
            "spec": {"selector": {}, "logs": [{"logsFile": str(log_file)}]},
        }

    def _create_nodes(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.admin_client() as c:
            for i in range(self.nodes):
                name = f"{self.name}-node-{i}"
                node: dict[str, Any] = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {
                            NODE_ANNOTATION: "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                        # The labels a kubelet puts on its node, so that real-world
                        # manifests with a nodeSelector schedule here.
                        "labels": {
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "kubernetes.io/hostname": name,
                            "beta.kubernetes.io/os": "linux",
                            "beta.kubernetes.io/arch": "amd64",
                            "node.kubernetes.io/instance-type": "kwok",
                            "type": "kwok",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                        "nodeInfo": {
                            "architecture": "amd64",
                            "operatingSystem": "linux",
                            "kubeletVersion": "fake",
                            "kubeProxyVersion": "fake",
                        },
                    },
                }
                r = c.post("/api/v1/nodes", json=node)
                if r.status_code not in (201, 409):
                    raise ControlPlaneError(f"creating node {name}: HTTP {r.status_code} {r.text}")
            while True:
                nodes = c.get("/api/v1/nodes").json().get("items", [])
                ready = [
                    n
                    for n in nodes
                    if any(
                        cond["type"] == "Ready" and cond["status"] == "True"
                        for cond in n.get("status", {}).get("conditions", [])
                    )
                ]
                if len(ready) >= self.nodes:
                    return
                for p in self.procs:
                    self._check_running(p)
                if time.monotonic() > deadline:
                    raise ControlPlaneError("simulated nodes did not become Ready")
                time.sleep(0.1)

    def _wait_leases(self, timeout: float) -> None:
        """kube-controller-manager and kube-scheduler answer their /healthz: the
        cluster acts, not just stores. (They run without leader election, so there
        is no lease to wait for; their serving certificates are self-signed.)"""
        deadline = time.monotonic() + timeout
        for port in ("controller_manager", "scheduler"):
            url = f"https://127.0.0.1:{self.ports[port]}/healthz"
            while True:
                try:
                    if httpx.get(url, verify=False, timeout=2).text == "ok":  # noqa: S501
                        break
                except httpx.HTTPError:
                    pass
                for p in self.procs:
                    self._check_running(p)
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"{port.replace('_', '-')} not healthy at {url}")
                time.sleep(0.1)

    def _save_state(self) -> None:
        state = {
            "name": self.name,
            "nodes": self.nodes,
            "server": self.server,
            "data_dir": str(self.data_dir),
            "ports": self.ports,
            "procs": [{"name": p.name, "pid": p.pid, "binary": p.binary} for p in self.procs],
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))
