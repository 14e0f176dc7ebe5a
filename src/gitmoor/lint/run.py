"""``lint(root, targets)``: every app found, rendered as the engine renders it, checked.

Each app is rendered by ``gitmoor.render.render_app`` with
``RenderOptions(keep_encrypted=True)``: the same path checks and limits as a
sync, kustomize and helm run the same way, and SOPS files rendered as they are
(no keys are needed to lint, and an encrypted Secret is what the plaintext
rule wants to see). A render that fails is itself a finding (GM010) naming the
file it concerns.

Where a finding points:

- directory apps: the renderer records each object's file and line
  (``Manifest.source``); the rule's JSON path is then followed in that file's
  YAML nodes to the line and column of the field (``yamlcheck.Locator``);
- kustomize apps: kustomize keeps no origins, so an object is looked up by
  kind and name among the YAML files of the kustomization's own directory (a
  base's objects are found there when the base is linted on its own); an
  object the overlay got from elsewhere is reported at the kustomization file,
  and dropped when a base it renders through, linted on its own, reports the
  same rule, object and message (``_from_bases_once``);
- Helm apps: the template file (``# Source:``), without a line: lines of the
  rendered output are not lines of the template.

Every YAML file an app reads directly is checked too (``yamlcheck``): all
checks for a directory app's manifests; syntax only for a kustomization's
directory and a chart's ``Chart.yaml`` and ``values*.yaml`` (patches and
values are YAML, not objects). When such a file is broken the render fails
with the same problem, so that render error is not reported twice; a directory
app is then checked on the objects of its other files.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gitmoor.lint.config import ignored_by_annotation, load_config
from gitmoor.lint.discover import (
    CHART_FILE,
    AppPath,
    bases_of,
    discover,
    kustomization_in,
    resources_of,
)
from gitmoor.lint.findings import Finding, Rule, Severity, register
from gitmoor.lint.rules import check_object
from gitmoor.lint.schema import Schemas, check_schema
from gitmoor.lint.yamlcheck import FileCheck, check_text, yaml_finding
from gitmoor.model import GitmoorError, ObjectRef, UserInputError
from gitmoor.render import RenderOptions, open_app, render_app
from gitmoor.render.directory import manifest_files
from gitmoor.render.paths import read_text

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from gitmoor.model import Manifest
    from gitmoor.render import AppTree

log = logging.getLogger(__name__)

RENDER_ERROR = register(
    Rule(
        "GM010",
        "render-error",
        Severity.ERROR,
        "the app does not render",
        "Fix what the message names (the file, the kustomization entry, the template); "
        "`gitmoor render PATH` shows the same error.",
    )
)

_AT_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+)$")


@dataclass(frozen=True, slots=True)
class CheckedObject:
    """One object that was checked, for outputs that list passes (JUnit)."""

    file: str
    object: str


@dataclass(slots=True)
class LintReport:
    apps: list[AppPath] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    objects: list[CheckedObject] = field(default_factory=list)
    seconds: float = 0.0
    #: every rendered object as (object, file, line, ref), for the checks that
    #: run after the offline ones (``serverdryrun``)
    rendered: list[tuple[dict[str, Any], str, int, str]] = field(default_factory=list)
    #: ``--server-dry-run``: objects the API server checked, and how long it took
    #: (None when it did not run); the human output's footer names both
    server_checked: int = 0
    server_seconds: float | None = None

    def errors(self) -> int:
        return sum(f.severity is Severity.ERROR for f in self.findings)

    def warnings(self) -> int:
        return sum(f.severity is Severity.WARNING for f in self.findings)


@dataclass(slots=True)
class _App:
    """One app's work: the files it checked and what they hold."""

    root: Path
    app: AppPath
    files: dict[str, FileCheck] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    #: policy findings, kept apart for ``_from_bases_once``
    policy: list[Finding] = field(default_factory=list)
    objects: list[CheckedObject] = field(default_factory=list)
    #: a kustomization's own ``resources`` files (repo-relative): where its
    #: objects are written, unlike its patches
    resources: set[str] = field(default_factory=set)
    tree: AppTree | None = None
    #: every object checked, (object, file, line, ref), for the schema check
    #: that runs once the CRDs of every app are known (``_schema``)
    checked: list[tuple[dict[str, Any], str, int, str]] = field(default_factory=list)
    #: rule ids no annotation waives (``--required-rule``, ``required``)
    required: frozenset[str] = frozenset()

    def file_check(self, path: Path, *, shape: bool) -> FileCheck:
        rel = path.relative_to(self.root).as_posix()
        if rel not in self.files:
            try:
                if not path.resolve().is_relative_to(self.root):
                    # Never read (nor quote, in a public CI annotation) what a
                    # symlink reaches outside the repository; the render refuses it too.
                    raise UserInputError(
                        "symlink points outside the repository; refusing to read it"
                    )
                text = read_text(self._tree(), path)
            except GitmoorError as err:
                check = FileCheck(loaded=False)
                check.findings.append(yaml_finding(RENDER_ERROR, err.message, rel, 0))
            else:
                check = check_text(text, rel, shape=shape)
            self.files[rel] = check
            self.findings.extend(check.findings)
        return self.files[rel]

    def _tree(self) -> AppTree:
        if self.tree is None:
            self.tree = open_app(self.root, self.app.path, "local")
        return self.tree

    def broken(self) -> bool:
        return any(not c.loaded for c in self.files.values())


def lint(
    root: Path,
    targets: Sequence[Path],
    *,
    timeout: float = 120.0,
    required: Sequence[Rule] = (),
    kubernetes_version: str | None = None,
) -> LintReport:
    """Lint every app under ``targets`` in the repository ``root`` (both resolved).

    ``required``: rules a project requires (``spec.requiredLintRules``): their
    findings are errors, and neither an object's annotation nor the
    repository's configuration waives them (``required`` module).

    ``kubernetes_version``: the shipped OpenAPI schemas to check against
    (``1.37``; default the newest); an unknown one is a ``UserInputError``.
    """
    schemas = Schemas.load(kubernetes_version)
    must = frozenset(r.id for r in required)
    started = time.monotonic()
    config = load_config(root)
    report = LintReport(apps=discover(root, targets))
    seen: set[tuple[str, str, str, str]] = set()
    policy: dict[str, list[Finding]] = {}
    bases: dict[str, set[str]] = {}
    works: list[_App] = []
    for app in report.apps:
        work = _lint_app(root, app, timeout, must)
        works.append(work)
        report.objects.extend(work.objects)
        report.rendered.extend(work.checked)
        report.findings.extend(work.findings)
        policy[app.path] = work.policy
        if app.kind == "kustomize":
            bases[app.path] = bases_of(root, root / app.path)
    # A CR in one app may be defined by a CRD in another: the schema check
    # waits for every app's objects. Its findings join the policy ones, so a
    # base's object rendered through its overlays is reported once.
    schemas.add_crds(obj for w in works for obj, *_ in w.checked)
    for work in works:
        work.policy.extend(_schema(work, schemas))
    report.findings.extend(_from_bases_once(policy, bases))
    report.findings = [
        f
        for f in (_as_required(f) if f.rule in must else config.apply(f) for f in report.findings)
        if f is not None
    ]
    unique: list[Finding] = []
    for f in sorted(report.findings, key=Finding.sort_key):
        key = (f.rule, f.file, f"{f.line}:{f.column}", f"{f.object}{f.message}")
        if key not in seen:
            seen.add(key)
            unique.append(f)
    report.findings = unique
    report.seconds = time.monotonic() - started
    log.info(
        "event=lint apps=%d objects=%d errors=%d warnings=%d seconds=%.3f",
        len(report.apps),
        len(report.objects),
        report.errors(),
        report.warnings(),
        report.seconds,
    )
    return report


def _cause(f: Finding) -> tuple[str, str, str]:
    # The object without its namespace: an overlay sets one its base leaves empty.
    kind, _, rest = f.object.partition(" ")
    return (f.rule, f"{kind} {rest.rsplit('/', 1)[-1]}", f.message)


def _from_bases_once(policy: dict[str, list[Finding]], bases: dict[str, set[str]]) -> list[Finding]:
    """One report per cause: a base's object rendered through three overlays
    breaks a rule four times over, and the place to fix it is the base's file,
    not each overlay's kustomization. So an overlay's finding is dropped when
    one of the bases it renders through (linted as an app of its own) has the
    same rule, object (kind and name; overlays set the namespace) and message;
    a finding the overlay changes (the replicas it sets) stays with the
    overlay. A base outside the linted paths is not linted, so its findings
    stay with the overlay."""
    causes = {app: {_cause(f) for f in found} for app, found in policy.items()}
    kept: list[Finding] = []
    for app, found in policy.items():
        from_bases: set[tuple[str, str, str]] = set()
        for base in bases.get(app, ()):
            from_bases |= causes.get(base, set())
        kept.extend(f for f in found if _cause(f) not in from_bases)
    return kept


def _as_required(f: Finding) -> Finding:
    return f if f.severity is Severity.ERROR else replace(f, severity=Severity.ERROR)


def _lint_app(root: Path, app: AppPath, timeout: float, required: frozenset[str]) -> _App:
    work = _App(root, app, required=required)
    app_dir = root / app.path
    if app.kind == "directory":
        tree = open_app(root, app.path, "local")
        for path in manifest_files(tree):
            work.file_check(path, shape=True)
    elif app.kind == "kustomize":
        for path in sorted(app_dir.iterdir()):
            if path.is_file() and (
                path.suffix in (".yaml", ".yml") or path.name == "Kustomization"
            ):
                work.file_check(path, shape=False)
        kfile = kustomization_in(app_dir)
        if kfile is not None:
            work.resources = {
                p.relative_to(root).as_posix()
                for p in resources_of(kfile, root)
                if p.is_file() and p.is_relative_to(root)
            }
    else:
        for path in sorted(app_dir.iterdir()):
            if path.name == CHART_FILE or (
                path.name.startswith("values") and path.suffix in (".yaml", ".yml")
            ):
                work.file_check(path, shape=False)
    try:
        result = render_app(
            root, app.path, "local", RenderOptions(keep_encrypted=True, timeout=timeout)
        )
    except GitmoorError as err:
        if work.broken():
            # The render stopped at a file already reported; a directory app's
            # other files are still checked.
            if app.kind == "directory":
                _check_loaded(work)
            return work
        work.findings.append(_render_finding(root, app, err))
        return work
    objs = [m.obj for m in result.manifests]
    for manifest in result.manifests:
        _check_manifest(work, manifest, objs)
    return work


def _check_loaded(work: _App) -> None:
    loaded = [(rel, obj, line) for rel, c in work.files.items() for obj, line in c.objects]
    objs = [obj for _, obj, _ in loaded]
    for rel, obj, line in loaded:
        ref = str(ObjectRef.of(obj))
        _policy(work, obj, objs, rel, line, ref)


def _object_file(work: _App, manifest: Manifest) -> tuple[str, int]:
    """(repo-relative file, line of the object; 0 when unknown)."""
    app = work.app
    prefix = "" if app.path == "." else f"{app.path}/"
    if app.kind == "directory" and manifest.source is not None:
        return f"{prefix}{manifest.source.file}", manifest.source.line
    if app.kind == "helm":
        template = manifest.source.file if manifest.source else CHART_FILE
        return f"{prefix}{template}", 0
    # kustomize: the object as written in the kustomization's own directory
    ref = manifest.ref
    for rel, check in work.files.items():
        if rel not in work.resources:
            continue
        for obj, line in _shaped(check, rel, work):
            meta = obj.get("metadata") or {}
            if obj.get("kind") == ref.kind and meta.get("name") == ref.name:
                return rel, line
    kfile = kustomization_in(work.root / app.path)
    return (kfile.relative_to(work.root).as_posix() if kfile else app.path), 0


def _shaped(check: FileCheck, rel: str, work: _App) -> list[tuple[dict[str, Any], int]]:
    """The objects of a file checked for syntax only (a kustomization's directory):
    loaded again for their shape, without reporting it (patches are not objects)."""
    if check.objects or not check.loaded:
        return check.objects
    text = read_text(work._tree(), work.root / rel)
    check.objects = check_text(text, rel, shape=True).objects
    return check.objects


def _check_manifest(work: _App, manifest: Manifest, objs: list[dict[str, Any]]) -> None:
    file, line = _object_file(work, manifest)
    _policy(work, manifest.obj, objs, file, line, str(manifest.ref))


def _policy(
    work: _App, obj: dict[str, Any], objs: list[dict[str, Any]], file: str, line: int, ref: str
) -> None:
    work.objects.append(CheckedObject(file, ref))
    work.checked.append((obj, file, line, ref))
    ignored = ignored_by_annotation(obj)
    for hit in check_object(obj, objs):
        found = _located(work, hit, ignored, file, line, ref)
        if found is not None:
            work.policy.append(found)


def _located(
    work: _App, hit: Any, ignored: frozenset[str], file: str, line: int, ref: str
) -> Finding | None:
    """``hit`` (a policy or schema rule's) as a finding at its field's line where
    the object's file is known; None when the object's annotation waives it and
    the project does not require the rule."""
    waived = "all" in ignored or hit.rule.id in ignored
    if waived and hit.rule.id not in work.required:
        return None
    check = work.files.get(file)
    at_line, column = line, 0
    if line and check is not None:
        at_line, column, _ = check.locator.locate(line, hit.path)
    rule = hit.rule
    return Finding(rule.id, rule.severity, hit.message, rule.fix, file, at_line, column, ref)


def _render_finding(root: Path, app: AppPath, err: GitmoorError) -> Finding:
    """A render error at the file it concerns (``file:line`` or a file of the
    repository); else at the app's kustomization, chart or directory."""
    concerns = err.concerns or ""
    m = _AT_LINE.match(concerns)
    file, line = (m.group("file"), int(m.group("line"))) if m else (concerns, 0)
    if not file or not (root / file).is_file():
        app_dir = root / app.path
        main = kustomization_in(app_dir) if app.kind == "kustomize" else app_dir / CHART_FILE
        file = (
            main.relative_to(root).as_posix()
            if app.kind != "directory" and main is not None
            else app.path
        )
        line = 0
    message = err.message
    if isinstance(err, UserInputError) and file not in message and concerns and concerns != file:
        message = f"{concerns}: {message}" if concerns != app.path else message
    return Finding(RENDER_ERROR.id, RENDER_ERROR.severity, message, RENDER_ERROR.fix, file, line)


def _schema(work: _App, schemas: Schemas) -> Iterator[Finding]:
    """The OpenAPI findings of an app's objects, at the field's line where the
    object's file is known (``schema``), waived by the annotation as policy is."""
    for obj, file, line, ref in work.checked:
        ignored = ignored_by_annotation(obj)
        for hit in check_schema(obj, schemas):
            found = _located(work, hit, ignored, file, line, ref)
            if found is not None:
                yield found
