"""What a user's working tree says about itself: the URL of its ``origin`` remote.

``gitmoor diff --local PATH --all-apps`` picks the apps of the repository the
working tree is a clone of. Argo CD's ``argocd app diff --local`` is given the
app by name and never asks; here the remote is what tells two repositories with
the same directory layout apart. Read-only: ``git config --get`` runs no hook
and changes nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("gitmoor.source")

#: a local ``git config`` read answers in milliseconds; this only bounds a hung git
_TIMEOUT = 10.0


def origin_url(tree: Path) -> str | None:
    """The ``remote.origin.url`` of the git working tree at ``tree``, or None when
    ``tree`` is not a git working tree, has no ``origin``, git is missing, or git
    refuses the repository (``safe.directory``): the caller then matches without it."""
    git = shutil.which("git")
    if git is None or not tree.is_dir():
        return None
    try:
        done = subprocess.run(
            [git, "-C", str(tree), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            # Never prompt: a config read needs no credentials.
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.info("event=origin_unknown tree=%s error=%s", tree, type(e).__name__)
        return None
    url = done.stdout.strip()
    if done.returncode != 0 or not url:
        return None
    return url
