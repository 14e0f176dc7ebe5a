"""kustomize and helm run shut in: no network, nothing of our environment, bounded output.

The checks before kustomize refuse URLs; these tests bypass them and call the
tool runner directly, to prove the wall behind them holds on its own.
"""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import RetryableError, UserInputError
from gitmoor.render.limits import MAX_RENDER_BYTES
from gitmoor.render.proc import closed_proxy, run_tool
from gitmoor.testenv import pki

if TYPE_CHECKING:
    from collections.abc import Iterator


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = b"PASSWORD=hunter2\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that records every request it gets."""
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _kustomize(kubectl: str, app: Path) -> list[str]:
    return [kubectl, "kustomize", "--load-restrictor=LoadRestrictionsRootOnly", "--", str(app)]


def test_the_server_is_reachable_without_the_wall(
    kubectl: str, repo: Path, server: tuple[str, list[str]]
) -> None:
    """The control: the same kustomization does fetch when run unconfined."""
    url, requests = server
    (repo / "kustomization.yaml").write_text(
        f"configMapGenerator:\n- name: x\n  files: [{url}/x]\n"
    )
    out = subprocess.run(
        _kustomize(kubectl, repo),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(repo.parent)},
        check=False,
    )
    assert "hunter2" in out.stdout
    assert requests == ["/x"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_kustomize_cannot_fetch_a_generator_file_even_past_the_checks(
    kubectl: str, repo: Path, server: tuple[str, list[str]], host: str
) -> None:
    # Loopback is what Go's HTTP client never proxies; it is refused all the same.
    url, requests = server
    url = url.replace("127.0.0.1", host)
    (repo / "kustomization.yaml").write_text(
        f"configMapGenerator:\n- name: x\n  files: [{url}/x]\n"
    )
    with pytest.raises(UserInputError, match="kustomize failed") as err:
        run_tool(_kustomize(kubectl, repo), what="kustomize", concerns="app", timeout=60, cwd=repo)
    assert requests == []
    assert "hunter2" not in str(err.value)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, list[str], Path]]:
    """An https server on loopback with a certificate from a CA of our own."""
    ca = pki.new_ca("hostile-test-ca")
    leaf = pki.issue(ca, "127.0.0.1", ip_addresses=["127.0.0.1"], server=True)
    ca_file, cert_file, key_file = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca.cert_pem)
    cert_file.write_bytes(leaf.cert_pem)
    key_file.write_bytes(leaf.key_pem)
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", requests, ca_file
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_kustomize_cannot_fetch_over_https_from_a_trusted_server(
    kubectl: str, repo: Path, tls_server: tuple[str, list[str], Path]
) -> None:
    url, requests, ca_file = tls_server
    (repo / "kustomization.yaml").write_text(
        f"configMapGenerator:\n- name: x\n  files: [{url}/x]\n"
    )
    # The control: trusting the CA, an unconfined kustomize does fetch.
    control = subprocess.run(
        _kustomize(kubectl, repo),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(repo.parent), "SSL_CERT_FILE": str(ca_file)},
        check=False,
    )
    assert "hunter2" in control.stdout, control.stderr
    assert requests == ["/x"]
    requests.clear()
    # Shut in, it does not, even when asked to trust the CA: no CA is trusted.
    with pytest.raises(UserInputError, match="kustomize failed") as err:
        run_tool(
            _kustomize(kubectl, repo),
            what="kustomize",
            concerns="app",
            timeout=60,
            cwd=repo,
            env={"SSL_CERT_FILE": str(ca_file)},
        )
    assert requests == []
    assert "hunter2" not in str(err.value)


def test_the_proxy_port_refuses_at_once() -> None:
    """The proxy the tools are given must refuse, not hang (or accept)."""
    host, port = closed_proxy().removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_tool_sees_none_of_our_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /root/.ssh/deploy-key")
    monkeypatch.setenv("GIT_ASKPASS", "/usr/bin/give-token")
    monkeypatch.setenv("KUBECONFIG", "/root/.kube/config")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("NO_PROXY", "*")
    tool = _script(tmp_path / "env-tool", "env\n")
    out = run_tool([tool], what="tool", concerns="app", timeout=30)
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    for var in ("GIT_SSH_COMMAND", "GIT_ASKPASS", "KUBECONFIG", "AWS_SECRET_ACCESS_KEY"):
        assert var not in env
    assert not any(k.startswith("GIT_") and k not in _OURS for k in env)
    home = Path(env["HOME"])
    assert home != Path.home()
    assert home.name.startswith("gitmoor-tool-")
    assert not home.exists()  # removed once the tool has run
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        assert env[var] == closed_proxy()
    assert env["NO_PROXY"] == env["no_proxy"] == ""
    assert env["GIT_ALLOW_PROTOCOL"] == "none"


#: What run_tool itself sets for git: restrictions, not the controller's settings.
_OURS = {"GIT_CONFIG_NOSYSTEM", "GIT_TERMINAL_PROMPT", "GIT_ALLOW_PROTOCOL"}


def test_endless_output_is_cut_off_and_the_tool_killed(tmp_path: Path) -> None:
    tool = _script(tmp_path / "endless", "exec yes gitmoor\n")
    with pytest.raises(UserInputError, match="its output passed the 32 MiB limit") as err:
        run_tool([tool], what="tool", concerns="app", timeout=120)
    assert err.value.concerns == "app"


def test_endless_error_output_is_cut_off_too(tmp_path: Path) -> None:
    tool = _script(tmp_path / "noisy", "exec yes warning >&2\n")
    with pytest.raises(UserInputError, match="error output passed the 1 MiB limit"):
        run_tool([tool], what="tool", concerns="app", timeout=120)


def test_output_up_to_the_limit_is_kept_whole(tmp_path: Path) -> None:
    size = MAX_RENDER_BYTES // 4
    tool = _script(tmp_path / "big", f"head -c {size} /dev/zero | tr '\\0' x\n")
    out = run_tool([tool], what="tool", concerns="app", timeout=120)
    assert len(out.stdout) == size


def test_a_timeout_kills_what_the_tool_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    tool = _script(tmp_path / "spawner", f"sleep 60 &\necho $! > {pidfile}\nwait\n")
    with pytest.raises(RetryableError, match=r"did not finish within 0\.5s"):
        run_tool([tool], what="tool", concerns="app", timeout=0.5)
    child = int(pidfile.read_text())
    # Killed with its session: at most a zombie until init reaps it.
    try:
        state = Path(f"/proc/{child}/stat").read_text().split()[2]
    except FileNotFoundError:
        state = "gone"
    assert state in ("gone", "Z")


def test_a_tool_killed_by_a_signal_is_retried_not_blamed_on_the_repository(
    tmp_path: Path,
) -> None:
    # The OOM killer or a shutdown, not something the repository said.
    tool = _script(tmp_path / "oom", "kill -9 $$\n")
    with pytest.raises(RetryableError, match="killed by signal 9"):
        run_tool([tool], what="tool", concerns="app", timeout=30)
