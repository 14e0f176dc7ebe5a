"""`make bench`: run every benchmark in turn; each prints its own figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["controlplane.py", "sync.py", "controller.py", "server.py", "decrypt.py", "lint.py"]

for name in BENCHES:
    print(f"== {name}", flush=True)
    subprocess.run([sys.executable, str(HERE / name), *sys.argv[1:]], check=True)
