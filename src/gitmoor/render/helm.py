"""Helm charts through ``helm template``, offline and isolated from the user's helm.

Helm keeps repositories, plugins and registry logins under its cache, config
and data homes; pointing all three at a fresh temporary directory means a
render never reads the controller user's helm setup (or a stale repository
index), never writes to it, and cannot reach the network through
``helm dependency`` machinery: subcharts come only from the chart's own
``charts/`` directory, as committed. ``run_tool`` adds the rest: no network,
no inherited environment, bounded output (see ``proc``).
"""

from __future__ import annotations

import bisect
import json
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gitmoor.model import Manifest, RenderResult, UserInputError
from gitmoor.render.objects import manifests_of
from gitmoor.render.paths import file_size, inside_root
from gitmoor.render.proc import command_from_env, run_tool
from gitmoor.render.yamlload import InvalidYAML, load_documents

if TYPE_CHECKING:
    from gitmoor.render.base import AppTree, RenderOptions

CHART_FILE = "Chart.yaml"

#: helm's own rule for release names (``chartutil.ValidateReleaseName``):
#: a DNS-1123 subdomain of at most 53 characters.
_RELEASE = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$")
_NAMESPACE = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$")
_KUBE_VERSION = re.compile(r"^v?\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?$")
_API_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9./-]*$")
#: ``helm template`` heads every document with ``# Source: <chart>/<path in chart>``.
_SOURCE = re.compile(r"^# Source: (?P<path>\S.*?)\s*$")

DEFAULT_RELEASE = "release-name"  # what ``helm template`` itself calls an unnamed release


def _validated(options: RenderOptions) -> tuple[str, str]:
    release = options.release_name or DEFAULT_RELEASE
    if len(release) > 53 or not _RELEASE.match(release):
        raise UserInputError(
            "helm release name must be a DNS-1123 subdomain of at most 53 characters",
            concerns=release,
        )
    namespace = options.namespace or "default"
    if len(namespace) > 63 or not _NAMESPACE.match(namespace):
        raise UserInputError("namespace must be a DNS-1123 label", concerns=namespace)
    if options.kube_version and not _KUBE_VERSION.match(options.kube_version):
        raise UserInputError("not a Kubernetes version", concerns=options.kube_version)
    for api in options.api_versions:
        if not _API_VERSION.match(api):
            raise UserInputError("not an API version", concerns=api)
    return release, namespace


def value_file(app: AppTree, entry: str) -> Path:
    """The resolved value file ``entry`` names; it must be a file in the repository.

    Relative paths are relative to the chart (the app path); an absolute path is
    relative to the repository root, which is how Argo CD reads ``valueFiles``.
    """
    if "://" in entry:
        raise UserInputError(
            "value files must be files in the repository, not URLs", concerns=entry
        )
    base = app.root if entry.startswith("/") else app.app_dir
    real = inside_root(app.root, base / entry.lstrip("/"), concerns=entry)
    if not real.is_file():
        raise UserInputError("value file is not a file", concerns=entry)
    file_size(app, real)  # helm reads it whole: the per-file limit applies
    if "," in str(real) or '"' in str(real):
        # helm reads ``--values`` as a CSV list: ``x,/etc/passwd`` (a directory
        # ``x,`` in the repository) would become a second file outside it.
        raise UserInputError(
            "helm cannot take a value file whose path has a comma or a quote", concerns=entry
        )
    return real


def _source_lines(output: str) -> tuple[list[int], list[str]]:
    lines: list[int] = []
    paths: list[str] = []
    for number, text in enumerate(output.splitlines(), start=1):
        m = _SOURCE.match(text)
        if m:
            # Drop the chart's name: what is left is relative to the chart
            # directory, which is the app path (subcharts keep ``charts/<sub>/``).
            parts = PurePosixPath(m.group("path")).parts[1:]
            lines.append(number)
            paths.append(PurePosixPath(*parts).as_posix() if parts else m.group("path"))
    return lines, paths


def _template_at(line: int, lines: list[int], paths: list[str]) -> str | None:
    """The template whose ``# Source:`` header is the last one before ``line``."""
    i = bisect.bisect_left(lines, line)
    return paths[i - 1] if i else None


class HelmRenderer:
    """``helm template <release> <chart> --namespace <ns> --include-crds -f ...``."""

    name = "helm"

    def render(self, app: AppTree, options: RenderOptions) -> RenderResult:
        release, namespace = _validated(options)
        files = [value_file(app, entry) for entry in options.value_files]
        with tempfile.TemporaryDirectory(prefix="gitmoor-helm-") as tmp:
            home = Path(tmp)
            args = [f"--namespace={namespace}"]
            if options.include_crds:
                args.append("--include-crds")
            if options.skip_tests:
                args.append("--skip-tests")
            if options.kube_version:
                args.append(f"--kube-version={options.kube_version}")
            args.extend(f"--api-versions={api}" for api in options.api_versions)
            args.extend(f"--values={f}" for f in files)
            if options.values:
                inline = home / "inline-values.json"  # JSON is YAML, without YAML's guessing
                try:
                    inline.write_text(json.dumps(options.values), encoding="utf-8")
                except (TypeError, ValueError) as err:
                    raise UserInputError(
                        f"inline helm values are not plain data: {err}", concerns=app.path
                    ) from err
                args.append(f"--values={inline}")
            # Only these on top of run_tool's isolated environment: no HELM_*
            # of the controller's (registry configs, plugins), no network.
            env = {
                var: str(home / var.removeprefix("HELM_").removesuffix("_HOME").lower())
                for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")
            }
            cmd = [
                *command_from_env("GITMOOR_HELM", "helm"),
                "template",
                *args,
                "--",
                release,
                str(app.app_dir),
            ]
            out = run_tool(
                cmd,
                what="helm template",
                concerns=app.path,
                timeout=options.timeout,
                env=env,
                cwd=app.app_dir,
                scrub=(home, app.app_dir, app.root),
            )
        lines, paths = _source_lines(out.stdout)

        def where(line: int) -> str:
            template = _template_at(line, lines, paths)
            if template is None:
                return f"helm output of {app.path}"
            return f"{app.repo_relative(app.app_dir / template)} (as rendered by helm)"

        try:
            docs = load_documents(out.stdout, where=f"helm output of {app.path}")
        except InvalidYAML as err:
            # A template that renders to broken YAML: name the template, since
            # lines of the combined output mean nothing to the chart's author.
            raise UserInputError(
                f"template renders invalid YAML: {err.problem}", concerns=where(err.line)
            ) from err
        manifests: list[Manifest] = []
        for doc in docs:
            manifests.extend(
                manifests_of(
                    doc,
                    where=where(doc.line),
                    source_file=_template_at(doc.line, lines, paths),
                    keep_line=False,
                )
            )
        return RenderResult(app.revision, tuple(manifests), out.warnings)
