"""``.sops.yaml`` creation rules: which recipients and which values, per file.

sops's ``config/config.go``: the first rule of ``creation_rules`` whose
``path_regex`` matches the file's path (relative to the directory of
``.sops.yaml``; a rule without ``path_regex`` matches every file) gives the age
recipients (``age:``, a comma-separated string or a list) and at most one of
``encrypted_regex``, ``unencrypted_regex``, ``encrypted_suffix``,
``unencrypted_suffix`` (and ``mac_only_encrypted``). A config with rules but none
that matches is an error, as in sops.

Where sops looks for ``.sops.yaml`` from the current directory upwards, gitmoor
looks from the file's own directory upwards: run from anywhere inside or outside
the repository, the repository's ``.sops.yaml`` applies to its files (from the
repository root, both find the same file). ``.sops.yml`` is not read, as in sops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from gitmoor.model.errors import UserInputError
from gitmoor.secrets.sopsfile import EncryptionRules

if TYPE_CHECKING:
    from pathlib import Path

CONFIG_NAME = ".sops.yaml"
_MAX_DEPTH = 100  # sops's maxDepth


@dataclass(frozen=True, slots=True)
class CreationRule:
    """The rule that applies to one file, and the ``.sops.yaml`` it came from."""

    config: Path
    age: tuple[str, ...]
    rules: EncryptionRules
    path_regex: str | None = None


def find_config(start: Path) -> Path | None:
    """The nearest ``.sops.yaml`` in ``start`` (a file's directory) or above it."""
    here = start.resolve()
    for _ in range(_MAX_DEPTH):
        candidate = here / CONFIG_NAME
        if candidate.is_file():
            return candidate
        if here.parent == here:
            return None
        here = here.parent
    return None


def _keys(value: Any, where: str) -> tuple[str, ...]:
    """sops's ``parseKeyField``: a comma-separated string or a list of strings."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(k.strip() for k in value.split(",") if k.strip())
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return tuple(k.strip() for k in value if k.strip())
    raise UserInputError(f"{where}.age must be a string or a list of strings", concerns=where)


def _text(rule: dict[str, Any], name: str, where: str) -> str | None:
    value = rule.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UserInputError(f"{where}.{name} must be a string", concerns=where)
    return value


def load_rules(config: Path) -> list[dict[str, Any]]:
    """The ``creation_rules`` of ``config`` (empty when it has none)."""
    try:
        doc = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserInputError(f"cannot read {config}: {e}", concerns=str(config)) from e
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise UserInputError(f"{config} must be a mapping", concerns=str(config))
    rules = doc.get("creation_rules") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise UserInputError(
            f"{config}: creation_rules must be a list of mappings", concerns=str(config)
        )
    return rules


def rule_for(file: Path, config: Path | None = None) -> CreationRule | None:
    """The creation rule for ``file`` from ``config`` (default: the nearest
    ``.sops.yaml``); None when there is no config or it has no creation rules."""
    config = config or find_config(file.resolve().parent)
    if config is None:
        return None
    rules = load_rules(config)
    if not rules:
        return None
    relative = file.resolve().as_posix()
    base = config.resolve().parent.as_posix() + "/"
    relative = relative.removeprefix(base)
    for i, rule in enumerate(rules):
        where = f"{config}: creation_rules[{i}]"
        pattern = _text(rule, "path_regex", where)
        if pattern is not None:
            try:
                if not re.search(pattern, relative):
                    continue
            except re.error as e:
                raise UserInputError(
                    f"{where}.path_regex {pattern!r} is not a valid regular expression: {e}",
                    concerns=str(config),
                ) from e
        if rule.get("key_groups"):
            raise UserInputError(
                f"{where} uses key_groups: use the real sops for Shamir key groups",
                concerns=str(config),
            )
        for name in ("encrypted_comment_regex", "unencrypted_comment_regex"):
            if rule.get(name):
                raise UserInputError(
                    f"{where} uses {name}, which depends on YAML comments: use the real sops",
                    concerns=str(config),
                )
        enc_rules = EncryptionRules(
            encrypted_regex=_text(rule, "encrypted_regex", where),
            unencrypted_regex=_text(rule, "unencrypted_regex", where),
            encrypted_suffix=_text(rule, "encrypted_suffix", where),
            unencrypted_suffix=_text(rule, "unencrypted_suffix", where),
            mac_only_encrypted=rule.get("mac_only_encrypted") is True,
        )
        enc_rules.check(where)
        return CreationRule(
            config=config,
            age=_keys(rule.get("age"), where),
            rules=enc_rules,
            path_regex=pattern,
        )
    raise UserInputError(
        f"no creation rule of {config} matches {relative} (sops refuses such a file too)",
        concerns=str(file),
    )


__all__ = ["CONFIG_NAME", "CreationRule", "find_config", "load_rules", "rule_for"]
