"""The vendored browser libraries are exactly what ``make ui-vendor`` copied.

``static/vendor/`` is build output of ``make ui-vendor`` (``npm ci`` from
``package-lock.json``): never edited by hand. The target writes
``SHA256SUMS``; a file that no longer matches it was edited after the copy, and
a pin in ``package.json`` that differs from the lock or from the copied file
means the copy is stale.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

UI = Path(__file__).resolve().parents[3] / "src" / "gitmoor" / "server" / "ui"
VENDOR = UI / "static" / "vendor"


def _sums() -> dict[str, str]:
    out = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        out[name.lstrip("*")] = digest
    return out


def test_every_vendored_file_matches_its_recorded_sha256() -> None:
    sums = _sums()
    assert set(sums) == {"htmx.min.js", "htmx.LICENSE"}
    on_disk = {p.name for p in VENDOR.iterdir()} - {"SHA256SUMS"}
    assert on_disk == set(sums), "a file in static/vendor/ that make ui-vendor did not write"
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, (
            f"static/vendor/{name} differs from what make ui-vendor copied: run make ui-vendor"
        )


def test_htmx_is_the_pinned_2_0_release() -> None:
    package = json.loads((UI / "package.json").read_text())
    lock = json.loads((UI / "package-lock.json").read_text())
    pinned = package["dependencies"]["htmx.org"]
    assert re.fullmatch(r"2\.0\.\d+", pinned), (
        f"htmx.org must be pinned to a 2.0.x release: {pinned}"
    )
    assert lock["packages"]["node_modules/htmx.org"]["version"] == pinned
    assert lock["packages"]["node_modules/htmx.org"]["integrity"].startswith("sha512-")
    shipped = re.search(r'version:"([^"]+)"', (VENDOR / "htmx.min.js").read_text())
    assert shipped is not None and shipped.group(1) == pinned
