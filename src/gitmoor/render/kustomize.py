"""Kustomize through ``kubectl kustomize``, the binary users already run.

A render must depend on the commit and nothing else, and read nothing but the
repository. Kustomize's ``LoadRestrictionsRootOnly`` keeps local *files* below
each kustomization root, but its file loader fetches any ``http(s)://`` URL a
kustomization names in a file field (generator sources, patches,
replacements, ...: ``FileLoader.Load``), it clones git URLs given as bases,
and a base *directory* may be anywhere on disk. So before the binary runs,
every kustomization of the tree is read (the app's, its bases and components,
and directories of generator or transformer configs, recursively), and every
field that kustomize's ``types.Kustomization`` reads as a path is checked:

- ``resources``, ``bases``, ``components``, ``crds``, ``configurations``,
  ``generators``, ``transformers``, ``validators``, ``patchesStrategicMerge``
  (its entries that are not inline patches), ``patches[].path``,
  ``patchesJson6902[].path``, ``replacements[].path``,
  ``configMapGenerator``/``secretGenerator`` ``files`` (the path of
  ``key=path`` too), ``envs`` and ``env``, and ``openapi.path``; in
  generator, transformer and validator configs (files or inline), the path
  fields of kustomize's built-in plugins: ``files``, ``envs``, ``env``,
  ``path``, ``paths`` and ``replacements[].path``;
- an entry that looks like a URL is refused: a scheme (``https:``,
  ``git::``, ``oci://``, ``file://``; what Go's ``url.Parse`` calls one, which
  is how kustomize decides to fetch), ``user@host`` or ``github.com/...`` (what
  its git URL parser accepts). That holds even when a directory of that name is
  committed: kustomize tries the URL before the directory, so a directory named
  ``https:`` must not make a URL "local". Only ``resources``, ``bases`` and
  ``components`` may name a remote base, and only when the app allows it
  (``RenderOptions.allow_remote_bases``); ``file://`` never, as it would read
  another repository on the controller's disk;
- a local entry must resolve, symlinks followed, inside the repository, and
  exist;
- ``helmCharts`` (``helmChartInflationGenerator``, ``helmGlobals``, a
  ``HelmChartInflationGenerator`` config) is refused outright: kustomize would
  download the chart. A chart is rendered as a Helm app instead.

Each refusal names the kustomization (or plugin config) file and the field.
Behind these checks, kustomize runs with no way out to the network (``proc``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gitmoor.model import RenderResult, UserInputError
from gitmoor.render.objects import manifests_of
from gitmoor.render.paths import read_text, refuse_outbound_symlinks
from gitmoor.render.proc import command_from_env, run_tool
from gitmoor.render.yamlload import load_documents

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from gitmoor.render.base import AppTree, RenderOptions

#: The names kustomize recognises, in its own order of preference
#: (``konfig.RecognizedKustomizationFileNames``).
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

#: Entries name a kustomization directory, a file of objects, or a remote base.
_BASE_FIELDS = ("resources", "bases", "components")
#: Entries name a directory whose objects are plugin configs, a file of plugin
#: configs, or hold an inline config (a multi-line string).
_PLUGIN_FIELDS = ("generators", "transformers", "validators")
#: Entries name files.
_FILE_FIELDS = ("crds", "configurations")
#: Lists of mappings whose ``path`` names a file.
_PATH_ITEM_FIELDS = ("patches", "patchesJson6902", "replacements")
#: Lists of generator arguments (``files``, ``envs``, ``env``).
_GENERATOR_FIELDS = ("configMapGenerator", "secretGenerator")
#: Kustomize's Helm support pulls charts from their repositories.
_HELM_FIELDS = ("helmCharts", "helmChartInflationGenerator", "helmGlobals")

# A URL as kustomize sees one: a scheme as Go's url.Parse finds it (its file
# loader fetches http and https), ``user@`` (scp-like git), or github.com
# without a scheme (both accepted by its git URL parser, ``git/repospec.go``).
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|[a-z][a-z0-9-]*@|github\.com(?:[/:]|$))", re.I)


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        try:
            if candidate.is_file():
                return candidate
        except OSError:
            continue  # unreadable: kustomize will say so if it matters
    return None


def looks_remote(entry: str) -> bool:
    return bool(_REMOTE.match(entry))


@dataclass(frozen=True, slots=True)
class _Entry:
    """One path-bearing value of a kustomization or plugin config."""

    #: The field as the author wrote it, e.g. ``configMapGenerator[0].files``.
    field: str
    value: str
    #: "base", "plugin" (generators & co.), "inline" (an inline plugin config) or "file".
    role: str


def _list(spec: dict[str, Any], field: str, where: str) -> list[Any]:
    value = spec.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserInputError(f"{field} must be a list", concerns=where)
    return value


def _strings(spec: dict[str, Any], field: str, where: str) -> Iterator[str]:
    # Non-strings are kustomize's to refuse; they name no place.
    return (v for v in _list(spec, field, where) if isinstance(v, str))


def _source_path(entry: str) -> str:
    # kustomize's ParseFileSource: ``key=path`` names ``path``; more than one
    # ``=`` is an error of kustomize's own, so the rest is checked as it is.
    return entry.split("=", 1)[1] if "=" in entry else entry


def _generator_sources(args: dict[str, Any], prefix: str, where: str) -> Iterator[_Entry]:
    for entry in _strings(args, "files", where):
        yield _Entry(f"{prefix}.files", _source_path(entry), "file")
    for entry in _strings(args, "envs", where):
        yield _Entry(f"{prefix}.envs", entry, "file")
    env = args.get("env")
    if isinstance(env, str) and env:
        yield _Entry(f"{prefix}.env", env, "file")


def _is_inline_patch(entry: str) -> bool:
    # patchesStrategicMerge takes a path or the patch itself; kustomize tries
    # the file first. A patch is YAML of several lines or JSON in one.
    return "\n" in entry or entry.lstrip().startswith(("{", "["))


def _refuse_helm(field: str, where: str) -> UserInputError:
    return UserInputError(
        f"{field} is not supported: kustomize would download the chart; render the "
        "chart as a Helm app (a path holding Chart.yaml) instead",
        concerns=where,
    )


def _kustomization_entries(spec: dict[str, Any], where: str) -> Iterator[_Entry]:
    for field in _HELM_FIELDS:
        if spec.get(field):
            raise _refuse_helm(field, where)
    for field in _BASE_FIELDS:
        for value in _strings(spec, field, where):
            yield _Entry(field, value, "base")
    for field in _PLUGIN_FIELDS:
        for value in _strings(spec, field, where):
            yield _Entry(field, value, "inline" if "\n" in value else "plugin")
    for field in _FILE_FIELDS:
        for value in _strings(spec, field, where):
            yield _Entry(field, value, "file")
    for value in _strings(spec, "patchesStrategicMerge", where):
        if not _is_inline_patch(value):
            yield _Entry("patchesStrategicMerge", value, "file")
    for field in _PATH_ITEM_FIELDS:
        for i, item in enumerate(_list(spec, field, where)):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield _Entry(f"{field}[{i}].path", item["path"], "file")
    for field in _GENERATOR_FIELDS:
        for i, args in enumerate(_list(spec, field, where)):
            if isinstance(args, dict):
                yield from _generator_sources(args, f"{field}[{i}]", where)
    openapi = spec.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield _Entry("openapi.path", openapi["path"], "file")


def _plugin_entries(config: dict[str, Any], where: str) -> Iterator[_Entry]:
    """The path fields of kustomize's built-in plugins (``api/builtins``).

    ConfigMapGenerator and SecretGenerator take generator arguments at the top;
    PatchTransformer and PatchJson6902Transformer a ``path``,
    PatchStrategicMergeTransformer ``paths``, ReplacementTransformer
    ``replacements[].path``. Other plugins need kustomize's alpha-plugin flags,
    which ``kubectl kustomize`` is not given.
    """
    kind = config.get("kind")
    name = kind if isinstance(kind, str) and kind else "plugin config"
    if "helm" in name.lower():
        raise _refuse_helm(name, where)
    yield from _generator_sources(config, name, where)
    if isinstance(config.get("path"), str):
        yield _Entry(f"{name}.path", config["path"], "file")
    for value in _strings(config, "paths", where):
        if not _is_inline_patch(value):
            yield _Entry(f"{name}.paths", value, "file")
    for i, item in enumerate(_list(config, "replacements", where)):
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            yield _Entry(f"{name}.replacements[{i}].path", item["path"], "file")


def _target(
    app: AppTree, directory: Path, entry: _Entry, where: str, options: RenderOptions
) -> Path | None:
    """The resolved local target of ``entry``, or ``None`` for an allowed remote base."""
    value = entry.value
    if looks_remote(value):
        if (
            entry.role == "base"
            and options.allow_remote_bases
            and "file:" not in value.lower()  # also git::file://
        ):
            return None
        hint = " (set allow_remote_bases to permit remote bases)" if entry.role == "base" else ""
        raise UserInputError(
            f"remote {entry.field} entry {value!r} is not allowed: a render must depend "
            f"only on the commit and read only the repository{hint}",
            concerns=where,
        )
    if "\x00" in value:
        raise UserInputError(f"{entry.field} entry {value!r} contains a NUL byte", concerns=where)
    try:
        real = (directory / value).resolve()
        exists = real.exists()
    except RuntimeError as err:  # pathlib's symlink loop before Python 3.13
        raise UserInputError(
            f"{entry.field} entry {value!r} is a symlink loop", concerns=where
        ) from err
    except OSError as err:
        raise UserInputError(
            f"{entry.field} entry {value!r} cannot be read: {err.strerror or err}",
            concerns=where,
        ) from err
    # Outside first: whether a file outside the repository exists is not the
    # repository's business either.
    if not real.is_relative_to(app.root):
        raise UserInputError(
            f"{entry.field} entry {value!r} resolves outside the repository", concerns=where
        )
    if not exists:
        raise UserInputError(f"{entry.field} entry {value!r} does not exist", concerns=where)
    return real


def _check_plugin_text(
    app: AppTree, text: str, where: str, loader_root: Path, options: RenderOptions
) -> None:
    for doc in load_documents(text, where=where):
        if isinstance(doc.data, dict):
            for entry in _plugin_entries(doc.data, where):
                _target(app, loader_root, entry, where, options)


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:
        return False


def check_kustomizations(app: AppTree, options: RenderOptions) -> None:
    """Check every path-bearing field of every kustomization of the tree (module docstring).

    Plugin configs name paths relative to the kustomization that lists them as
    generators or transformers, even when they come from a directory further
    down (kustomize loads them with that kustomization's loader), so each
    directory is visited with the root its plugin configs are relative to.
    """
    seen: set[tuple[Path, Path | None]] = set()
    # (directory, plugin root): the root is set below a generators/transformers/
    # validators entry, where every file of objects is a plugin config.
    stack: list[tuple[Path, Path | None]] = [(app.app_dir, None)]
    while stack:
        directory, plugin_root = stack.pop()
        if (directory, plugin_root) in seen:
            continue
        seen.add((directory, plugin_root))
        kfile = kustomization_file(directory)
        if kfile is None:
            continue  # kustomize itself says which base lacks a kustomization
        where = app.repo_relative(kfile)
        docs = load_documents(read_text(app, kfile), where=where)
        spec = docs[0].data if docs else {}
        if not isinstance(spec, dict):
            raise UserInputError("kustomization is not a mapping", concerns=where)
        for entry in _kustomization_entries(spec, where):
            if entry.role == "inline":
                root = plugin_root or directory
                _check_plugin_text(app, entry.value, f"{where} ({entry.field})", root, options)
                continue
            target = _target(app, directory, entry, where, options)
            if target is None or entry.role == "file":
                continue
            if entry.role == "plugin" or plugin_root is not None:
                root = plugin_root or directory
                if _is_dir(target):
                    _descend(app, target, root, stack)
                else:
                    shown = app.repo_relative(target)
                    _check_plugin_text(app, read_text(app, target), shown, root, options)
            elif _is_dir(target):
                _descend(app, target, None, stack)


def _descend(
    app: AppTree, target: Path, plugin_root: Path | None, stack: list[tuple[Path, Path | None]]
) -> None:
    if not target.is_relative_to(app.app_dir):
        # render_app checked the app path; a base elsewhere in the repository
        # is read by kustomize too.
        refuse_outbound_symlinks(app, target)
    stack.append((target, plugin_root))


#: The name this check had when it covered bases only.
check_bases = check_kustomizations


class KustomizeRenderer:
    """``kubectl kustomize <dir> --load-restrictor LoadRestrictionsRootOnly``."""

    name = "kustomize"

    def render(self, app: AppTree, options: RenderOptions) -> RenderResult:
        check_kustomizations(app, options)
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
            network=options.allow_remote_bases,
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
