"""The CLI's side of the repository URL rules: a token in `app create --repo` is
refused before anything is stored, and `file://` needs `--allow-file-repos` (or
GITMOOR_ALLOW_FILE_REPOS), as on the controller."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from support.apps import configmap, dump

if TYPE_CHECKING:
    from support.apps import AppEnv
    from support.cli import Gitmoor


async def test_token_in_the_repo_url_is_refused_and_nothing_is_created(
    gitmoor: Gitmoor, env: AppEnv
) -> None:
    for url in ("https://ghp_S3cr3tT0k3n@github.com/org/repo.git", "https://u:S3cr3tT0k3n@h/r"):
        out = gitmoor("app", "create", "leaky", "--repo", url, "--dest-namespace", env.namespace)
        assert out.returncode == 2, out.stdout
        assert "gitmoor repo add" in out.stderr
        assert "S3cr3tT0k3n" not in out.stderr + out.stdout
        assert "Traceback" not in out.stderr
        assert await env.kube.get(env.app_ref("leaky")) is None


async def test_file_repository_needs_an_allowed_root(gitmoor: Gitmoor, env: AppEnv) -> None:
    env.repo.commit({"cm.yaml": dump(configmap("one"))})
    await env.create("local")
    bare = replace(
        gitmoor, env={k: v for k, v in gitmoor.env.items() if k != "GITMOOR_ALLOW_FILE_REPOS"}
    )

    refused = bare("app", "diff", "local")
    assert refused.returncode == 2, refused.stdout
    assert env.repo.url in refused.stderr
    assert "--allow-file-repos" in refused.stderr
    assert "Traceback" not in refused.stderr

    allowed = bare("--allow-file-repos", str(env.repo.path.parent), "app", "diff", "local")
    assert allowed.returncode == 1, allowed.stderr  # differences: nothing applied yet
    assert "one" in allowed.stdout
