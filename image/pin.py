"""Pin deploy/'s image to a digest: ``images: [{name: …, digest: sha256:…}]``.

    python3 image/pin.py sha256:…           pin deploy/base and deploy/server
    python3 image/pin.py --unpin DEPLOY_DIR  remove the pin (the image's own copy)

Kustomize's ``images`` transformer then writes ``ghcr.io/gitmoor/gitmoor@sha256:…``
into every container that names the image, in the default install and every
overlay (they build on base/ and server/), and so into what ``gitmoor bootstrap``
commits. A digest names one manifest for ever; a tag (``:0.1.0``) can be moved.

The edit is textual so the files' comments survive; the block is recognised by
the marker comment it writes. The image carries deploy/ unpinned, because an
image cannot name its own digest: a pinned copy inside would change the digest
at every pin.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

NAME = "ghcr.io/gitmoor/gitmoor"
FILES = ("base/kustomization.yaml", "server/kustomization.yaml")
MARKER = "# The image `make image-pin` built (image/pin.py):"
_BLOCK = re.compile(re.escape(MARKER) + r".*?\n(?:[ \-#].*\n|images:\n)*", re.DOTALL)


def block(digest: str) -> str:
    return (
        f"{MARKER} its manifest digest, so a cluster\n"
        "# runs exactly the image that was built and tested, whatever the tag points to later.\n"
        "images:\n"
        f"- name: {NAME}\n"
        f"  digest: {digest}\n"
    )


def unpinned(text: str) -> str:
    return _BLOCK.sub("", text)


def pinned(text: str, digest: str) -> str:
    text = unpinned(text)
    if re.search(r"^images:", text, re.MULTILINE):
        sys.exit("pin: this kustomization has an images: list of its own; pin it by hand")
    return text.rstrip("\n") + "\n" + block(digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("digest", nargs="?", help="sha256:… (default: .local/image/digest)")
    parser.add_argument("--deploy", type=Path, default=Path(__file__).parents[1] / "deploy")
    parser.add_argument("--unpin", type=Path, metavar="DEPLOY_DIR")
    args = parser.parse_args()
    if args.unpin:
        for name in FILES:
            path = args.unpin / name
            path.write_text(unpinned(path.read_text()))
        return
    digest = args.digest
    if digest is None:
        digest = (Path(__file__).parents[1] / ".local" / "image" / "digest").read_text().strip()
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        sys.exit(f"pin: {digest!r} is not a sha256 digest")
    for name in FILES:
        path = args.deploy / name
        path.write_text(pinned(path.read_text(), digest))
        print(f"pinned {path}: {NAME}@{digest}")


if __name__ == "__main__":
    main()
