"""The SPDX 2.3 SBOM of gitmoor's image, printed as JSON on stdout.

Three sources, each the record of what was installed rather than a guess:
- the Debian packages: the image's own ``var/lib/dpkg/status`` (what scanners such
  as Trivy and Syft read from a Debian image too), ``install ok installed`` only;
- the Python packages: the ``*.dist-info`` directories in the image's
  site-packages, each checked against ``uv.lock`` (same version, or the build
  stops: the image must hold exactly what the lock says);
- the Go binaries copied from the tool cache, by module and version.

Output is deterministic for the same inputs (sorted, no wall-clock time: the
creation time is SOURCE_DATE_EPOCH's), so it does not change the image's digest
from one build to the next.

    python3 image/sbom.py --rootfs DIR --site /usr/local/lib/python3.11/dist-packages \\
        --lock uv.lock --name ghcr.io/gitmoor/gitmoor --version 0.1.0 \\
        --created 2026-01-01T00:00:00Z [--go-tool helm=helm.sh/helm/v3@v3.22.0 ...]
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any


def _norm(name: str) -> str:
    # PEP 503: the lock and dist-info may spell a name differently.
    return re.sub(r"[-_.]+", "-", name).lower()


def _spdx_id(kind: str, name: str) -> str:
    return f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name)


def debian_packages(rootfs: Path) -> list[dict[str, Any]]:
    os_release = dict(
        line.split("=", 1)
        for line in (rootfs / "etc/os-release").read_text().splitlines()
        if "=" in line
    )
    distro = f"debian-{os_release.get('VERSION_ID', '').strip(chr(34))}"
    text = (rootfs / "var/lib/dpkg/status").read_text()
    packages = []
    for para in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in para.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # continuation lines (Description, Conffiles)
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Status") != "install ok installed":
            continue
        name, version, arch = fields["Package"], fields["Version"], fields["Architecture"]
        source = fields.get("Source", "").split(" ")[0] or name
        packages.append(
            {
                "SPDXID": _spdx_id("deb", name),
                "name": name,
                "versionInfo": version,
                "supplier": "Organization: Debian",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "sourceInfo": f"Debian source package {source}",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:deb/debian/{name}@{version}"
                        f"?arch={arch}&distro={distro}",
                    }
                ],
            }
        )
    return packages


def python_packages(site: Path, lock: Path, project: str) -> list[dict[str, Any]]:
    locked = {_norm(p["name"]): p for p in tomllib.loads(lock.read_text()).get("package", [])}
    packages = []
    for dist_info in sorted(site.glob("*.dist-info")):
        meta = email.parser.Parser().parsestr((dist_info / "METADATA").read_text())
        name, version = meta["Name"], meta["Version"]
        entry = locked.get(_norm(name))
        if entry is None or (_norm(name) != project and entry.get("version") != version):
            have = entry.get("version") if entry else "absent"
            sys.exit(f"sbom: {name} {version} is installed but uv.lock has {have}")
        licence = meta.get("License-Expression") or "NOASSERTION"
        source = entry.get("source", {})
        packages.append(
            {
                "SPDXID": _spdx_id("pypi", name),
                "name": name,
                "versionInfo": version,
                "supplier": "NOASSERTION",
                "downloadLocation": (
                    f"https://pypi.org/project/{name}/{version}/"
                    if "registry" in source
                    else "NOASSERTION"
                ),
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": licence
                if re.fullmatch(r"[\w.+() -]+", licence)
                else "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "sourceInfo": "locked in uv.lock",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:pypi/{_norm(name)}@{version}",
                    }
                ],
            }
        )
    return packages


def go_tools(specs: list[str]) -> list[dict[str, Any]]:
    tools = []
    for spec in sorted(specs):
        binary, _, module_at = spec.partition("=")
        module, _, version = module_at.rpartition("@")
        tools.append(
            {
                "SPDXID": _spdx_id("go", binary),
                "name": binary,
                "versionInfo": version,
                "supplier": "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "sourceInfo": f"Go module {module}, /usr/local/bin/{binary}",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:golang/{module}@{version}",
                    }
                ],
            }
        )
    return tools


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--site", required=True, help="site-packages, absolute in the image")
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--created", required=True)
    parser.add_argument("--go-tool", action="append", default=[], metavar="BIN=MODULE@VERSION")
    args = parser.parse_args()

    contents = (
        debian_packages(args.rootfs)
        + python_packages(args.rootfs / args.site.lstrip("/"), args.lock, "gitmoor")
        + go_tools(args.go_tool)
    )
    contents.sort(key=lambda p: p["SPDXID"])
    image_id = "SPDXRef-Image"
    # A namespace unique to this content, without a random part (reproducible).
    digest = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()[:16]
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{args.name}:{args.version}",
        "documentNamespace": f"https://gitmoor.io/spdx/image/{args.version}-{digest}",
        "creationInfo": {"created": args.created, "creators": ["Tool: gitmoor-image-sbom"]},
        "packages": [
            {
                "SPDXID": image_id,
                "name": args.name,
                "versionInfo": args.version,
                "supplier": "Organization: gitmoor",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "Apache-2.0",
                "copyrightText": "NOASSERTION",
                "primaryPackagePurpose": "CONTAINER",
            },
            *contents,
        ],
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": image_id,
            },
            *(
                {
                    "spdxElementId": image_id,
                    "relationshipType": "CONTAINS",
                    "relatedSpdxElement": p["SPDXID"],
                }
                for p in contents
            ),
        ],
    }
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
