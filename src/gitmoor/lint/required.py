"""A project's ``requiredLintRules``: the same policy check before and after the merge.

``gitmoor lint --required-rule RULE`` (in CI, before the merge) and the engine
(at every render of an app whose project names the rule, after the merge) run
the one function here, :func:`check_required`, over the same rule functions
(``rules.CHECKS``), so a rule a reviewer saw fail cannot pass at sync time and
the reverse. Argo CD has no equivalent; the shape follows its project checks
(``IsResourcePermitted``: refused before anything is applied, with a condition
naming the rule and the object).

Two differences from a plain ``gitmoor lint`` run, on purpose:

- **No waiver.** An object's ``gitmoor.io/lint-ignore`` annotation and the
  repository's ``.gitmoor-lint.yaml`` do not silence a required rule: both are
  written by the repository's authors, and a project rule is the platform
  team's floor for them (as a Kubernetes admission policy is not waived by an
  annotation of the object it judges). ``.gitmoor-lint.yaml`` severities do
  not lower it either: a required rule's finding is always an error.
- **Decrypted Secrets.** The engine renders with the app's keys, so a Secret
  that was SOPS-encrypted in Git reaches the check in plain text. The plaintext
  rule (GM103) then passes a Secret whose every value was decrypted from SOPS
  (``RenderResult.secret_values``), which is what "encrypted in Git" means
  once the keys have been applied (``render.decrypt.check_encrypted_secrets``
  judges ``requireEncryptedSecrets`` the same way).

Only policy rules (GM1xx) can be required: the YAML and render checks concern
files, and a render that fails is refused by the engine anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gitmoor.lint.findings import RULES, Finding, Rule, Severity, rule_named
from gitmoor.lint.rules import PLAINTEXT_SECRET, check_object
from gitmoor.model import UserInputError
from gitmoor.render import decoded_secret_values

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from gitmoor.model import Manifest


def policy_rule_ids() -> tuple[str, ...]:
    """The ids a project may require: the policy rules, GM1xx."""
    return tuple(r for r in RULES if r.startswith("GM1"))


def required_rules(names: Iterable[str], where: str = "requiredLintRules") -> tuple[Rule, ...]:
    """The rules ``names`` (ids or slugs) name; UserInputError for an unknown one,
    or one that is not a policy rule (a typo must not silently require nothing)."""
    out: list[Rule] = []
    allowed = policy_rule_ids()
    for name in names:
        rule = rule_named(name)
        if rule is None or rule.id not in allowed:
            raise UserInputError(
                f"{where}: {name!r} is not a gitmoor lint policy rule "
                f"(one of {', '.join(allowed)}, or its slug)",
                concerns=where,
            )
        if rule not in out:
            out.append(rule)
    return tuple(out)


def check_required(
    manifests: Sequence[Manifest],
    rules: Sequence[Rule],
    *,
    decrypted: frozenset[str] = frozenset(),
    app_path: str = "",
) -> list[Finding]:
    """Every finding of ``rules`` in ``manifests`` (one app's render), as errors.

    ``decrypted``: the values the render decrypted from SOPS (see the module
    docstring). ``app_path``: prefixed to each object's file, so findings name
    repository files as ``gitmoor lint`` does.
    """
    wanted = {r.id for r in rules}
    if not wanted:
        return []
    objs = [m.obj for m in manifests]
    prefix = "" if app_path in ("", ".") else f"{app_path.rstrip('/')}/"
    found: list[Finding] = []
    for m in manifests:
        for hit in check_object(m.obj, objs):
            if hit.rule.id not in wanted:
                continue
            if hit.rule is PLAINTEXT_SECRET and decrypted:
                values = list(decoded_secret_values(m.obj))
                if values and all(v in decrypted for v in values):
                    continue
            file = f"{prefix}{m.source.file}" if m.source is not None else ""
            line = m.source.line if m.source is not None else 0
            found.append(
                Finding(
                    hit.rule.id,
                    Severity.ERROR,
                    hit.message,
                    hit.rule.fix,
                    file,
                    line,
                    0,
                    str(m.ref),
                )
            )
    return found
