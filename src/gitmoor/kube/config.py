"""Connection settings from a kubeconfig file or from inside a pod."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitmoor.kube.errors import KubeConfigError

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Where a cluster is and how to authenticate to it (credentials held in memory)."""

    server: str
    ca_pem: bytes | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str | None = None
    #: a file the token is re-read from (a pod's projected service-account token
    #: rotates; client-go re-reads it too)
    token_file: str | None = None
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"
    name: str = "in-cluster"

    def ssl_context(self) -> ssl.SSLContext:
        # The system's CA bundle is loaded only when it is what verifies the server
        # (client-go's rule too): loading it took 25-30 ms here, twice per client
        # (requests and watches), paid by every CLI command that never used it.
        if self.insecure_skip_tls_verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_pem:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        else:
            ctx = ssl.create_default_context()
        if self.client_cert_pem and self.client_key_pem:
            # load_cert_chain reads files only; a private temp dir lives for the call.
            with tempfile.TemporaryDirectory(prefix="gitmoor-tls-") as d:
                cert, key = Path(d) / "tls.crt", Path(d) / "tls.key"
                key.touch(mode=0o600)
                cert.write_bytes(self.client_cert_pem)
                key.write_bytes(self.client_key_pem)
                ctx.load_cert_chain(str(cert), str(key))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        return ctx

    def __repr__(self) -> str:  # never print credentials
        return f"ClusterConfig(server={self.server!r}, name={self.name!r})"


def _data_or_file(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def _named(items: list[dict[str, Any]], name: str, what: str, where: Path) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            value = item.get(what)
            return value if isinstance(value, dict) else {}
    raise KubeConfigError(f"no {what} named {name!r}", concerns=str(where))


def load_kubeconfig(path: str | Path | None = None, context: str | None = None) -> ClusterConfig:
    """The cluster of ``context`` (default: current) in the kubeconfig at ``path``.

    ``path`` defaults to ``$KUBECONFIG`` (first entry) and then ``~/.kube/config``.
    Exec and auth-provider plugins are refused with a clear error rather than run.
    """
    if path is None:
        env = os.environ.get("KUBECONFIG", "")
        path = env.split(os.pathsep)[0] if env else Path.home() / ".kube" / "config"
    p = Path(path).expanduser()
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError as e:
        raise KubeConfigError("kubeconfig not found", concerns=str(p)) from e
    except yaml.YAMLError as e:
        raise KubeConfigError(f"kubeconfig is not valid YAML: {e}", concerns=str(p)) from e
    if not isinstance(raw, dict):
        raise KubeConfigError("kubeconfig is not a mapping", concerns=str(p))
    ctx_name = context or raw.get("current-context")
    if not ctx_name:
        raise KubeConfigError("kubeconfig has no current-context", concerns=str(p))
    ctx = _named(raw.get("contexts", []), ctx_name, "context", p)
    cluster = _named(raw.get("clusters", []), ctx.get("cluster", ""), "cluster", p)
    user = _named(raw.get("users", []), ctx.get("user", ""), "user", p) if ctx.get("user") else {}
    if "exec" in user or "auth-provider" in user:
        raise KubeConfigError(
            f"context {ctx_name!r} uses an exec/auth-provider plugin, which gitmoor does not run; "
            "use a token or client certificate",
            concerns=str(p),
        )
    base = p.parent
    token = user.get("token")
    token_file = None
    if not token and user.get("tokenFile"):
        token_file = str(user["tokenFile"])
        token = Path(token_file).read_text().strip()
    if not cluster.get("server"):
        raise KubeConfigError(f"cluster of context {ctx_name!r} has no server", concerns=str(p))
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_data_or_file(cluster, "certificate-authority", base),
        client_cert_pem=_data_or_file(user, "client-certificate", base),
        client_key_pem=_data_or_file(user, "client-key", base),
        token=token,
        token_file=token_file,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        namespace=ctx.get("namespace") or "default",
        name=ctx_name,
    )


def in_cluster_config() -> ClusterConfig:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port:
        raise KubeConfigError("not running inside a pod (KUBERNETES_SERVICE_HOST unset)")
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_pem=(_SA_DIR / "ca.crt").read_bytes(),
        token=(_SA_DIR / "token").read_text().strip(),
        token_file=str(_SA_DIR / "token"),
        namespace=(_SA_DIR / "namespace").read_text().strip(),
    )


def default_config(path: str | Path | None = None, context: str | None = None) -> ClusterConfig:
    """A kubeconfig when one is given or exists, else the pod's service account."""
    if (
        path is None
        and not os.environ.get("KUBECONFIG")
        and os.environ.get("KUBERNETES_SERVICE_HOST")
    ):
        return in_cluster_config()
    return load_kubeconfig(path, context)
