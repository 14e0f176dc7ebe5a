"""`gitmoor health -f FILE`: the health gitmoor gives live objects, with no cluster.

Teams that write a CRD want to know what gitmoor (and so the app's health and
its sync waves) will make of their status before they deploy: they dump a live
object with ``kubectl get -o yaml`` and ask. The answer comes from the very
function the engine calls on live objects (``gitmoor.engine.health.health_of``),
and the rollup from ``app_health``, so nothing here can drift from what the
controller shows. Like ``argocd admin settings resource-overrides health``,
it needs neither a cluster nor a kubeconfig.

Input is read like ``kubectl apply -f``: a file, ``-`` for stdin, or a directory
(its ``.yaml``/``.yml``/``.json`` files; ``-R`` to descend), with ``kind: List``
dumps flattened into their items. Parsing goes through the renderers' strict
loader (duplicate keys refused, errors naming file:line) and their List and
object rules, so a file is read here exactly as a directory source reads it.
"""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from gitmoor.model import Health, HealthStatus, ObjectRef, UserInputError

#: The extensions ``kubectl apply -f DIR`` reads (its FileExtensions).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"

#: Exit codes, as for the other commands: 1 "the answer is bad", 2 "bad input".
EXIT_DEGRADED = 1
EXIT_BAD_INPUT = 2


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


@dataclass(frozen=True, slots=True)
class ObjectHealth:
    """One object of the input, where it was read, and the health the engine gives it."""

    ref: ObjectRef
    where: str
    health: Health


def _files(path: Path, *, recursive: bool) -> list[Path]:
    """The manifest files of ``-f path``; a directory with none is a mistake worth naming."""
    if not path.exists():
        raise UserInputError("no such file or directory", concerns=str(path))
    if not path.is_dir():
        return [path]
    pattern = "**/*" if recursive else "*"
    files = sorted(
        p
        for p in path.glob(pattern)
        if p.is_file()
        and p.suffix in MANIFEST_SUFFIXES
        # Editor and VCS leftovers (.#x.yaml, .git/...) are not manifests; the
        # directory renderer skips them too.
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    if not files:
        raise UserInputError(
            f"no {', '.join(MANIFEST_SUFFIXES)} files in this directory"
            + ("" if recursive else " (-R reads subdirectories)"),
            concerns=str(path),
        )
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserInputError("not UTF-8 text", concerns=str(path)) from e
    except OSError as e:
        raise UserInputError(e.strerror or str(e), concerns=str(path)) from e


def assess(text: str, *, where: str) -> list[ObjectHealth]:
    """The health of every object of one YAML/JSON text; bad input raises ``UserInputError``."""
    # Imported here, not at the top: `gitmoor --help` registers this command
    # without loading the engine's health rules or the renderers' loader.
    from gitmoor.engine import health_of
    from gitmoor.render.objects import manifests_of
    from gitmoor.render.yamlload import load_documents

    results = []
    for doc in load_documents(text, where=where):
        for manifest in manifests_of(doc, where=where, source_file=where):
            results.append(
                ObjectHealth(manifest.ref, str(manifest.source or where), health_of(manifest.obj))
            )
    return results


def _load(inputs: list[str], *, recursive: bool) -> list[ObjectHealth]:
    results: list[ObjectHealth] = []
    for given in inputs:
        if given == STDIN:
            # kubectl names stdin "STDIN" in its errors; so do we.
            results += assess(sys.stdin.read(), where="STDIN")
            continue
        for file in _files(Path(given), recursive=recursive):
            results += assess(_read(file), where=str(file))
    return results


def _health_dict(h: Health) -> dict[str, str]:
    return {"status": h.status.value, "message": h.message}


def _worst(results: list[ObjectHealth]) -> tuple[Health, ObjectHealth | None]:
    from gitmoor.engine import app_health

    worst = app_health(r.health for r in results)
    # The first object that carries the rolled-up health, so the summary can name it.
    culprit = next((r for r in results if r.health == worst), None)
    return worst, culprit


def _report(results: list[ObjectHealth]) -> dict[str, Any]:
    worst, _ = _worst(results)
    return {
        "health": _health_dict(worst),
        "resources": [
            {**r.ref.to_dict(), "source": r.where, "health": _health_dict(r.health)}
            for r in results
        ],
    }


def _print_table(results: list[ObjectHealth]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from gitmoor.cli.output import _HEALTH_STYLE

    # Piped output keeps whole lines for grep, as the other commands do.
    console = Console(
        highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000
    )
    # Text cells throughout: a status message may hold "[...]", which rich would
    # otherwise read as markup and drop.
    t = Table("KIND", "NAMESPACE/NAME", "HEALTH", "MESSAGE", box=None)
    for r in results:
        ref = r.ref
        status = r.health.status.value
        t.add_row(
            Text(ref.group_kind),
            Text(f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name),
            Text(status, style=_HEALTH_STYLE.get(status, "")),
            Text(r.health.message),
        )
    if results:
        console.print(t)
    worst, culprit = _worst(results)
    line = Text("App health: ", style="bold")
    line.append(worst.status.value, style=_HEALTH_STYLE.get(worst.status.value, ""))
    if culprit is not None and worst.status is not HealthStatus.HEALTHY:
        line.append(f" ({culprit.ref}" + (f": {worst.message})" if worst.message else ")"))
    elif not results:
        line.append(" (no objects)")
    console.print(line)


def health(
    files: Annotated[
        list[str],
        typer.Option(
            "--filename",
            "-f",
            help="YAML/JSON file of live objects (kubectl get -o yaml|json, List dumps "
            "included), a directory of them, or - for stdin; repeatable",
        ),
    ],
    output_format: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table, json or yaml")
    ] = OutputFormat.TABLE,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-R", help="read the subdirectories of a directory -f")
    ] = False,
) -> None:
    """Show the health gitmoor gives each object in FILE, offline (no cluster, no kubeconfig).

    The same rules as the engine: first what holds for every kind (being
    deleted, or status.observedGeneration below metadata.generation: Progressing;
    condition Stalled=True: Degraded; Reconciling=True: Progressing), then the
    kind's own rule (Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, Job,
    CronJob, Service, Ingress, PVC, HPA, CRD, APIService, Namespace,
    cert-manager Certificate).

    A kind without its own rule, such as your CRD, gets kstatus-style generic
    rules: condition Ready (or else Available) True → Healthy; False →
    Degraded, unless its reason says the controller is still working
    (Progressing, Reconciling, Pending, Creating, ...) → Progressing; Unknown →
    Progressing. With none of these conditions (no status, or no controller)
    it is Healthy.

    Exit codes: 0 none Degraded, 1 some object Degraded, 2 bad input (the error
    names file:line).
    """
    try:
        results = _load(files, recursive=recursive)
    except UserInputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(_report(results), indent=2))
    elif output_format is OutputFormat.YAML:
        import yaml

        typer.echo(yaml.safe_dump(_report(results), sort_keys=False).rstrip())
    else:
        _print_table(results)
    if any(r.health.status is HealthStatus.DEGRADED for r in results):
        raise typer.Exit(EXIT_DEGRADED)
