"""``gitmoor lint``: pre-merge checks of a repository, without a cluster.

Finds every app path (``discover``), renders it as the engine does with SOPS
files left encrypted (``run``), checks each YAML file (``yamlcheck``) and each
object against its kind's OpenAPI schema (``schema``: the Kubernetes schemas
shipped in ``schemas/``, made by ``schemagen``, and the repository's CRDs) and
the built-in policy rules (``rules``), minus what the
repository's configuration and the objects' annotations turn off (``config``),
and writes the findings for people or machines (``output``).

    lint(root, targets) -> LintReport
    await server_dry_run(kube, report)   (adds the API server's refusals)
    RULES: every rule by id (``findings.register`` adds one)

Rule ids: GM0xx for YAML and rendering, GM1xx for policy, GM2xx for the
OpenAPI schema, GM3xx for the API server's own answer (``serverdryrun``:
``--server-dry-run``, a server-side dry-run of every object).
"""

from gitmoor.lint.findings import RULES, Finding, Rule, Severity, rule_named
from gitmoor.lint.run import LintReport, lint
from gitmoor.lint.serverdryrun import server_dry_run

__all__ = [
    "RULES",
    "Finding",
    "LintReport",
    "Rule",
    "Severity",
    "lint",
    "rule_named",
    "server_dry_run",
]
