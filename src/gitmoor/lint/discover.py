"""Finding the application paths under the paths ``gitmoor lint`` is given.

The rule, in the order the renderer chooses (``render.select_renderer``):

1. A directory holding ``Chart.yaml`` is a Helm app; nothing below it is an
   app of its own (templates are not YAML, ``charts/`` are its subcharts).
2. A directory holding a kustomization (``kustomization.yaml``,
   ``kustomization.yml`` or ``Kustomization``) is a kustomize app. Every one is
   linted: an overlay (its bases are rendered through it) and a base on its
   own as well, since a base that builds is deployable by itself and its
   findings then carry the base's own file and line.
3. A directory that directly holds manifest files (``.yaml``, ``.yml``,
   ``.json``) is a directory app, unless it lies inside a chart, is a
   kustomization's directory, or is named by a kustomization (a ``resources``
   entry, a patch or a generator's file: kustomize input, not a
   deployable app; its objects are linted through that kustomization), or
   an ancestor is already a directory app (which reads its subdirectories
   recursively, as the renderer and Argo CD's ``directory.recurse`` do).

Dot-directories are skipped (``.github``, ``.git``), as the directory renderer
skips them; symlinked directories are not followed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitmoor.model import UserInputError
from gitmoor.render.limits import MAX_FILE_BYTES
from gitmoor.render.yamlload import InvalidYAML, load_documents

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CHART_FILE = "Chart.yaml"
#: kustomize's names, in its order (``konfig.RecognizedKustomizationFileNames``)
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, order=True, slots=True)
class AppPath:
    """One app: its path from the repository root (``.`` for the root) and type."""

    path: str
    kind: str  # "helm" | "kustomize" | "directory"


def kustomization_in(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix() or "."


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, str))


def _spec(kfile: Path, root: Path) -> dict[str, Any]:
    """A kustomization's mapping, read only inside the repository and within the
    per-file limit; anything else is empty here (the render reports it)."""
    try:
        if not kfile.resolve().is_relative_to(root) or kfile.stat().st_size > MAX_FILE_BYTES:
            return {}
        docs = load_documents(kfile.read_text(encoding="utf-8"), where=str(kfile))
    except (InvalidYAML, OSError, UnicodeDecodeError):
        return {}
    spec: Any = docs[0].data if docs else {}
    return spec if isinstance(spec, dict) else {}


def _referenced(kfile: Path, root: Path) -> Iterator[str]:
    """The local paths a kustomization names (files and directories)."""
    spec = _spec(kfile, root)
    for field in ("resources", "bases", "components", "crds", "generators", "transformers"):
        yield from _strings(spec.get(field))
    yield from (v for v in _strings(spec.get("patchesStrategicMerge")) if "\n" not in v)
    for field in ("patches", "patchesJson6902", "replacements"):
        for item in spec.get(field) or []:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield item["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        for args in spec.get(field) or []:
            if isinstance(args, dict):
                for entry in _strings(args.get("files")):
                    yield entry.split("=", 1)[-1]
                yield from _strings(args.get("envs"))
                if isinstance(args.get("env"), str):
                    yield args["env"]


def resources_of(kfile: Path, root: Path) -> list[Path]:
    """The local ``resources`` (and legacy ``bases``) a kustomization names, resolved."""
    spec = _spec(kfile, root)
    entries = [*_strings(spec.get("resources")), *_strings(spec.get("bases"))]
    return [(kfile.parent / e).resolve() for e in entries if "://" not in e]


def bases_of(root: Path, app_dir: Path) -> set[str]:
    """The kustomizations an app's kustomization renders through (``resources``
    and ``bases`` that are directories, transitively), as repository paths."""
    found: set[str] = set()
    stack = [app_dir]
    while stack:
        kfile = kustomization_in(stack.pop())
        if kfile is None:
            continue
        for target in resources_of(kfile, root):
            if target.is_dir() and target.is_relative_to(root):
                rel = _rel(root, target)
                if rel not in found:
                    found.add(rel)
                    stack.append(target)
    found.discard(_rel(root, app_dir))
    return found


def discover(root: Path, targets: Sequence[Path]) -> list[AppPath]:
    """The apps under ``targets`` (directories inside ``root``), sorted by path."""
    charts: set[Path] = set()
    kustomizations: dict[Path, Path] = {}
    with_manifests: set[Path] = set()
    for target in targets:
        if not target.is_dir():
            raise UserInputError("not a directory", concerns=str(target))
        if not target.is_relative_to(root):
            raise UserInputError(f"not inside the repository root {root}", concerns=str(target))
        for dirpath, dirnames, filenames in os.walk(target, followlinks=False):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            if CHART_FILE in filenames:
                charts.add(here)
                dirnames[:] = []
                continue
            kfile = kustomization_in(here)
            if kfile is not None:
                kustomizations[here] = kfile
                continue
            if any(not f.startswith(".") and f.endswith(MANIFEST_SUFFIXES) for f in filenames):
                with_manifests.add(here)
    referenced: set[Path] = set()
    for directory, kfile in kustomizations.items():
        for entry in _referenced(kfile, root):
            target = (directory / entry).resolve()
            referenced.add(target if target.is_dir() else target.parent)
    apps = [AppPath(_rel(root, d), "helm") for d in charts]
    apps += [AppPath(_rel(root, d), "kustomize") for d in kustomizations]
    directories: set[Path] = set()
    for d in sorted(with_manifests):  # parents sort before their children
        if d in referenced or any(a in directories for a in d.parents):
            continue
        directories.add(d)
        apps.append(AppPath(_rel(root, d), "directory"))
    return sorted(apps)
