"""A hostile repository gets a sentence, runs nothing and changes nothing.

Each case is pushed on top of a commit that synced fine. Then a sync fails and a
refresh reports the failure as the app's condition: one sentence naming the file,
no traceback, nothing of what lies outside the repository shown, no request to
the network, and the cluster exactly as it was.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from gitmoor.engine.sync import Phase, SyncOptions
from support.apps import configmap, dump
from support.cli import Gitmoor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from support.apps import AppEnv
    from support.gitrepo import GitRepo

SECRET = "PASSWORD=hunter2-outside-the-repo"


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = SECRET.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class World:
    """What a hostile repository would like to reach: a file and a server outside."""

    secret_file: Path
    url: str
    requests: list[str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    secret_file = tmp_path / "outside" / "secret.txt"
    secret_file.parent.mkdir()
    secret_file.write_text(SECRET + "\n")
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield World(secret_file, f"http://127.0.0.1:{httpd.server_address[1]}/x", requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _kustomization(text: str) -> Callable[[GitRepo, World], None]:
    def commit(repo: GitRepo, world: World) -> None:
        repo.commit(
            {
                "kustomization.yaml": text.format(
                    secret=world.secret_file, url=world.url, deep="../" * 12
                )
                + "resources: [good.yaml]\n",
                "good.yaml": dump(configmap("good", {"v": "2"})),
            },
            "hostile",
        )

    return commit


def _https_directory(repo: GitRepo, world: World) -> None:
    # On disk, ``https://127.0.0.1/x/secret.txt`` is the committed file
    # https:/127.0.0.1/x/secret.txt; kustomize would fetch the URL all the same.
    repo.commit(
        {
            "https:/127.0.0.1/x/secret.txt": "A=committed\n",
            "kustomization.yaml": "configMapGenerator:\n- name: s\n  files:\n"
            "  - https://127.0.0.1/x/secret.txt\nresources: [good.yaml]\n",
            "good.yaml": dump(configmap("good", {"v": "2"})),
        },
        "https dir",
    )


def _billion_laughs(repo: GitRepo, world: World) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "".join(
        f"  {line}\n" for line in lines
    )
    repo.commit({"bomb.yaml": bomb, "good.yaml": dump(configmap("good", {"v": "2"}))}, "bomb")


def _deep(repo: GitRepo, world: World) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: {x: "
    text += "[" * 10_000 + "]" * 10_000 + "}\n"
    repo.commit({"deep.yaml": text, "good.yaml": dump(configmap("good", {"v": "2"}))}, "deep")


def _symlink_loop(repo: GitRepo, world: World) -> None:
    os.symlink("loop-b.yaml", repo.path / "loop-a.yaml")
    os.symlink("loop-a.yaml", repo.path / "loop-b.yaml")
    repo.commit({"good.yaml": dump(configmap("good", {"v": "2"}))}, "loop")


def _huge_file(repo: GitRepo, world: World) -> None:
    with (repo.path / "huge.yaml").open("wb") as f:
        f.truncate(100 * 1000 * 1000)
    repo.commit({"good.yaml": dump(configmap("good", {"v": "2"}))}, "huge")


@dataclass(frozen=True)
class Case:
    commit: Callable[[GitRepo, World], None]
    #: every one of these must appear in the sentence
    expect: tuple[str, ...]


CASES = {
    "generator-file-outside": Case(
        _kustomization("configMapGenerator:\n- name: stolen\n  files: [{secret}]\n"),
        ("kustomization.yaml", "configMapGenerator[0].files", "outside the repository"),
    ),
    "generator-file-outside-relative": Case(
        _kustomization(
            "configMapGenerator:\n- name: stolen\n  files: [{deep}tmp/outside/secret.txt]\n"
        ),
        ("kustomization.yaml", "configMapGenerator[0].files", "outside the repository"),
    ),
    "generator-envs-remote": Case(
        _kustomization("secretGenerator:\n- name: stolen\n  envs: [{url}]\n"),
        ("kustomization.yaml", "remote secretGenerator[0].envs entry", "not allowed"),
    ),
    "generator-files-remote-key": Case(
        _kustomization("configMapGenerator:\n- name: stolen\n  files: [k={url}]\n"),
        ("kustomization.yaml", "remote configMapGenerator[0].files entry"),
    ),
    "patch-outside": Case(
        _kustomization("patches:\n- path: {secret}\n"),
        ("kustomization.yaml", "patches[0].path", "outside the repository"),
    ),
    "patch-remote": Case(
        _kustomization("patches:\n- path: {url}\n"),
        ("kustomization.yaml", "remote patches[0].path entry"),
    ),
    "https-directory": Case(
        _https_directory, ("kustomization.yaml", "remote configMapGenerator[0].files entry")
    ),
    "alias-bomb": Case(_billion_laughs, ("bomb.yaml:", "alias bomb")),
    "deep-nesting": Case(_deep, ("deep.yaml:", "nested more than 100 levels")),
    "symlink-loop": Case(_symlink_loop, ("loop-", "loop")),
    "huge-file": Case(_huge_file, ("huge.yaml", "larger than the 8 MiB limit")),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_commit_ends_in_one_sentence_and_changes_nothing(
    env: AppEnv, world: World, case: str
) -> None:
    hostile = CASES[case]
    env.repo.commit(
        {"good.yaml": dump(configmap("good", {"v": "1"})), "old.yaml": dump(configmap("old"))}
    )
    await env.create("hostile")
    assert (await env.sync("hostile")).ok
    env.repo.commit(remove=("old.yaml",))  # a sync that went ahead would prune it
    hostile.commit(env.repo, world)
    before = await env.snapshot()

    result = await env.sync("hostile", SyncOptions(prune=True, timeout=60))

    assert result.phase is Phase.FAILED
    _one_sentence(result.message, hostile.expect)
    assert result.resources == ()
    assert await env.snapshot() == before
    assert ((await env.get(env.cm("good"))) or {})["data"] == {"v": "1"}

    app, comparison = await env.refresh("hostile")

    assert comparison is None
    assert app.status["sync"]["status"] == "Unknown"
    (condition,) = app.status["conditions"]
    assert condition["type"] == "ComparisonError"
    _one_sentence(condition["message"], hostile.expect)
    assert SECRET not in json.dumps(app.raw)
    assert world.requests == []  # nothing started for this render reached the network
    assert await env.snapshot() == before


def _one_sentence(message: str, expect: tuple[str, ...]) -> None:
    for text in expect:
        assert text in message, message
    assert "Traceback" not in message
    assert "\n" not in message.strip(), message
    assert SECRET not in message
    assert len(message) < 600, message


async def test_gitmoor_app_sync_reports_an_alias_bomb_in_one_sentence(
    env: AppEnv, world: World, kubeconfig: Path, tmp_path: Path
) -> None:
    env.repo.commit({"good.yaml": dump(configmap("good", {"v": "1"}))})
    await env.create("bombed")
    _billion_laughs(env.repo, world)
    before = await env.snapshot()
    cli_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    cli_env["GITMOOR_CACHE_DIR"] = str(tmp_path / "cli-cache")
    gitmoor = Gitmoor(kubeconfig, env.apps_namespace, cli_env)

    out = gitmoor("app", "sync", "bombed")

    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    assert "alias bomb" in out.stdout + out.stderr
    assert "bomb.yaml:" in out.stdout + out.stderr
    assert await env.snapshot() == before
