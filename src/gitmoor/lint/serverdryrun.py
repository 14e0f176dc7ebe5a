"""``gitmoor lint --server-dry-run``: every rendered object checked by the API server.

The offline checks know the OpenAPI schema; the API server also knows what it
does not say: validation rules (a Service's ``clusterIP``, immutable fields),
admission (webhooks, policies, ``ResourceQuota``) and the CRDs it serves.
Each object is sent as a server-side apply with ``dryRun=All``, the same
request ``kubectl apply --server-side --dry-run=server`` sends and the engine's
diff sends (``engine.compare.dry_run``): the server runs every check of a
write and stores nothing. Field manager ``gitmoor-lint``, with conflicts
forced, as the engine's diff does: a field another manager (the engine's
own ``gitmoor``) owns is not a reason to refuse a pull request.

What counts as what:

- a refusal (``ApiError``: invalid, forbidden by admission, over quota, an
  unknown kind) is an error, GM301, naming the object, its file and line and
  the server's message, scrubbed of every Secret value of the render
  (``Redactor.learn``/``scrub``: a type error quotes the value it got);
- a namespaced object without a namespace goes to ``namespace`` (the
  ``--dry-run-namespace``, as ``kubectl``'s ``-n`` would place it);
- a namespace that does not exist is an error naming it, unless a Namespace
  object of the render creates it, and a custom resource whose kind the
  cluster does not serve is an error unless a CRD of the render defines it:
  a dry run creates nothing, so those objects cannot be checked until the
  namespace or CRD exists, and are reported as a warning, GM302, saying so;
- SOPS-encrypted objects are not sent: lint has no keys, and their
  ciphertext is not what the cluster would receive;
- an unreachable server (``ApiUnavailableError``) stops the run: no partial
  pass (the CLI exits 2).

Requests run ``concurrency`` at a time over the client's one HTTP/2
connection (see ARCHITECTURE.md, "Talking to the API server fast").
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from gitmoor.kube import ApiError, UnknownKindError
from gitmoor.lint.findings import Finding, Rule, Severity, register
from gitmoor.model import ObjectRef
from gitmoor.secrets.redact import Redactor

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.lint.run import LintReport

log = logging.getLogger(__name__)

FIELD_MANAGER = "gitmoor-lint"

SERVER_REFUSED = register(
    Rule(
        "GM301",
        "server-dry-run",
        Severity.ERROR,
        "the API server refuses the object (server-side dry-run)",
        "Fix what the server's message names (a field's value, an admission policy, "
        "a quota); `kubectl apply --server-side --dry-run=server -f FILE` shows the same answer.",
    )
)
SERVER_SKIPPED = register(
    Rule(
        "GM302",
        "server-dry-run-skipped",
        Severity.WARNING,
        "the API server could not check the object: its namespace or CRD is created by this render",
        "Nothing to fix in the object: apply the Namespace or CRD first (sync waves do), "
        "then lint again to have the server check it.",
    )
)

_NAMESPACE = ObjectRef("", "v1", "Namespace", "", "")


async def server_dry_run(
    kube: KubeClient,
    report: LintReport,
    *,
    namespace: str = "default",
    concurrency: int = 16,
) -> None:
    """Dry-run every object of ``report`` on the cluster of ``kube``; add the
    findings to ``report`` and set its ``server_checked``/``server_seconds``.

    Raises ``ApiUnavailableError`` when the server cannot be reached."""
    started = time.monotonic()
    # Before any object: an unreachable cluster fails here, once, clearly.
    await kube.resource("", "v1", "Namespace")
    redactor = Redactor("gitmoor-lint")
    objects: list[tuple[dict[str, Any], str, int, str]] = []
    seen: set[str] = set()
    for obj, file, line, ref in report.rendered:
        if "sops" in obj:
            continue
        key = json.dumps(obj, sort_keys=True, default=str)
        if key in seen:
            continue  # a base linted alone and through an overlay that changes nothing
        seen.add(key)
        redactor.learn(obj)
        objects.append((obj, file, line, ref))
    created_ns = {
        str((o.get("metadata") or {}).get("name"))
        for o, *_ in objects
        if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"
    }
    created_kinds = {
        (str(spec.get("group")), str((spec.get("names") or {}).get("kind")))
        for o, *_ in objects
        if o.get("kind") == "CustomResourceDefinition" and isinstance(spec := o.get("spec"), dict)
    }
    exists: dict[str, asyncio.Task[bool]] = {}
    sem = asyncio.Semaphore(concurrency)

    async def namespace_exists(name: str) -> bool:
        if name not in exists:
            exists[name] = asyncio.ensure_future(_exists(kube, name))
        return await exists[name]

    async def one(obj: dict[str, Any], file: str, line: int, ref: str) -> Finding | None:
        def finding(rule: Rule, message: str) -> Finding:
            return Finding(
                rule.id, rule.severity, redactor.scrub(message), rule.fix, file, line, 0, ref
            )

        async with sem:
            oref = ObjectRef.of(obj)
            try:
                resource = await kube.resource_for(oref)
            except UnknownKindError as e:
                if (oref.group, oref.kind) in created_kinds:
                    return finding(
                        SERVER_SKIPPED,
                        f"not checked by the server: kind {oref.kind} is defined by a CRD "
                        "of this render that the cluster does not serve yet (a dry run "
                        "creates nothing)",
                    )
                return finding(SERVER_REFUSED, f"the API server refused it: {e.message}")
            body = obj
            ns = oref_namespace = oref.namespace
            if resource.namespaced:
                if not ns:
                    ns = namespace
                    body = copy.deepcopy(obj)
                    body.setdefault("metadata", {})["namespace"] = ns
                    oref = ObjectRef.of(body)
                if not await namespace_exists(ns):
                    if ns in created_ns:
                        return finding(
                            SERVER_SKIPPED,
                            f"not checked by the server: namespace {ns} is created by this "
                            "render and does not exist in the cluster yet (a dry run "
                            "creates nothing)",
                        )
                    return finding(
                        SERVER_REFUSED,
                        f"namespace {ns} does not exist in the cluster: create it first, "
                        "or name another with --dry-run-namespace",
                    )
            try:
                await kube.apply(
                    body, ref=oref, field_manager=FIELD_MANAGER, force=True, dry_run=True
                )
            except ApiError as e:
                where = f" (sent to namespace {ns})" if ns != oref_namespace else ""
                return finding(SERVER_REFUSED, f"the API server refused it{where}: {e.message}")
            return None

    try:
        results = await asyncio.gather(*(one(*o) for o in objects))
    finally:
        for task in exists.values():
            task.cancel()
    report.findings.extend(f for f in results if f is not None)
    report.findings.sort(key=Finding.sort_key)
    report.server_checked = len(objects)
    report.server_seconds = time.monotonic() - started
    log.info(
        "event=lint_server_dry_run objects=%d refused=%d seconds=%.3f",
        len(objects),
        sum(f is not None and f.rule == SERVER_REFUSED.id for f in results),
        report.server_seconds,
    )


async def _exists(kube: KubeClient, name: str) -> bool:
    ref = ObjectRef(_NAMESPACE.group, _NAMESPACE.version, _NAMESPACE.kind, "", name)
    return await kube.get(ref) is not None
