"""Kustomize through ``kubectl kustomize``, the binary users already run.

Two checks come before the binary, because a render must depend on the commit
and nothing else: remote bases (git or HTTP URLs) are refused unless the app
allows them, and local bases must stay inside the repository. Kustomize's own
``LoadRestrictionsRootOnly`` keeps *files* below each kustomization root, but a
base *directory* may be anywhere on disk (``resources: [/srv/other-tenant]``),
so that part is ours.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gitmoor.model import RenderResult, UserInputError
from gitmoor.render.objects import manifests_of
from gitmoor.render.paths import read_text, refuse_outbound_symlinks
from gitmoor.render.proc import command_from_env, run_tool
from gitmoor.render.yamlload import load_documents

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.render.base import AppSource, RenderOptions

#: The names kustomize recognises, in its own order of preference
#: (``konfig.RecognizedKustomizationFileNames``).
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

#: Fields whose entries may be another kustomization directory, a file, or a URL.
_DIRECTORY_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
#: Fields whose entries are files only; kustomize still fetches them if given a URL.
_FILE_FIELDS = ("crds", "configurations")

# What kustomize's loader would try to fetch: a URL with a scheme, go-getter's
# ``git::``, scp-like ``git@host:``, or a bare ``host.tld/org/repo`` as in
# ``github.com/org/repo//path?ref=v1``. Checked only for entries that do not exist
# locally, as kustomize itself prefers a local path.
_REMOTE = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://|git::|[\w.-]+@[\w.-]+:|[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?/)",
    re.IGNORECASE,
)


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def looks_remote(entry: str) -> bool:
    return bool(_REMOTE.match(entry))


def _entries(spec: dict[str, Any], field: str, where: str) -> list[str]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserInputError(f"{field} must be a list", concerns=where)
    # Inline generator/transformer configs are mappings; only strings name a place.
    return [v for v in value if isinstance(v, str)]


def check_bases(app: AppSource, options: RenderOptions) -> None:
    """Refuse remote and out-of-repository bases, following local bases recursively."""
    seen: set[Path] = set()
    stack = [app.app_dir]
    while stack:
        directory = stack.pop()
        if directory in seen:
            continue
        seen.add(directory)
        kfile = kustomization_file(directory)
        if kfile is None:
            continue  # kustomize itself says which base lacks a kustomization
        where = app.repo_relative(kfile)
        docs = load_documents(read_text(app, kfile), where=where)
        spec = docs[0].data if docs else {}
        if not isinstance(spec, dict):
            raise UserInputError("kustomization is not a mapping", concerns=where)
        for field in (*_DIRECTORY_FIELDS, *_FILE_FIELDS):
            for entry in _entries(spec, field, where):
                local = _local_entry(app, directory, entry, field=field, where=where)
                if local is None:
                    if not options.allow_remote_bases:
                        raise UserInputError(
                            f"remote {field} entry {entry!r} is not allowed: a render must "
                            "depend only on the commit (set allow_remote_bases to permit it)",
                            concerns=where,
                        )
                    continue
                if field in _DIRECTORY_FIELDS and local.is_dir():
                    if not local.is_relative_to(app.app_dir):
                        refuse_outbound_symlinks(app, local)
                    stack.append(local)


def _local_entry(
    app: AppSource, directory: Path, entry: str, *, field: str, where: str
) -> Path | None:
    """The resolved local target of ``entry``, or ``None`` when it is remote."""
    candidate = directory / entry
    if not candidate.exists():
        if looks_remote(entry):
            return None
        raise UserInputError(f"{field} entry {entry!r} does not exist", concerns=where)
    real = candidate.resolve()
    if not real.is_relative_to(app.root):
        raise UserInputError(
            f"{field} entry {entry!r} resolves outside the repository", concerns=where
        )
    return real


class KustomizeRenderer:
    """``kubectl kustomize <dir> --load-restrictor LoadRestrictionsRootOnly``."""

    name = "kustomize"

    def render(self, app: AppSource, options: RenderOptions) -> RenderResult:
        check_bases(app, options)
        cmd = [
            *command_from_env("GITMOOR_KUBECTL", "kubectl"),
            "kustomize",
            # Kustomize's default already, spelled out so that a future default
            # (or a wrapper's) cannot widen what a repository may read.
            "--load-restrictor=LoadRestrictionsRootOnly",
            "--",
            str(app.app_dir),
        ]
        out = run_tool(
            cmd,
            what="kustomize",
            concerns=app.path,
            timeout=options.timeout,
            cwd=app.app_dir,
            scrub=(app.app_dir, app.root),
        )
        where = f"kustomize output of {app.path}"
        manifests = [
            m
            for doc in load_documents(out.stdout, where=where)
            # Kustomize drops file origins unless asked to annotate objects with
            # them; we do not change the objects, so the origin stays unknown.
            for m in manifests_of(doc, where=where, source_file=None)
        ]
        return RenderResult(app.revision, tuple(manifests), out.warnings)
