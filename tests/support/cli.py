"""Running the `gitmoor` command as a user does: a separate process."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Gitmoor:
    """``gitmoor --kubeconfig … --apps-namespace … ARGS``, as a user runs it."""

    kubeconfig: Path
    apps_namespace: str
    env: dict[str, str]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gitmoor.cli.main",
                "--kubeconfig",
                str(self.kubeconfig),
                "--apps-namespace",
                self.apps_namespace,
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
