"""`gitmoor render PATH`: the YAML gitmoor would apply, rendered locally without a cluster.

SOPS-encrypted files are decrypted with the age keys found the way ``sops``
finds them (``--age-key-file``; else ``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE`` and
``$XDG_CONFIG_HOME/sops/age/keys.txt``, together), by the real ``sops`` at render
time as the controller does. What is printed goes through the one redaction
policy (``gitmoor.secrets.redact``): Secret values, and the fields a
``--redact-rules`` file names, are masked unless ``--show-secrets`` is given.
Whoever holds the key file can decrypt the files anyway, so holding it is the
right ``--show-secrets`` needs here (the server asks for the right to read the
Secret itself).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gitmoor.cli._common import err, fail
from gitmoor.model import GitmoorError

if TYPE_CHECKING:
    from gitmoor.model.redaction import RedactRule
    from gitmoor.render import DecryptionKeys

#: the age private key lines of a key file (``age-keygen``'s format, ``#`` comments)
_AGE_PREFIX = "AGE-SECRET-KEY-1"
#: what the messages call the keys given here (the controller names its Secret)
KEYS_WHERE = "local key file"


def render(
    path: Annotated[
        Path, typer.Argument(help="the app's directory (plain YAML, kustomization or Helm chart)")
    ],
    root: Annotated[
        Path | None,
        typer.Option(
            help="repository root (default: the nearest folder above PATH holding .git, else PATH)"
        ),
    ] = None,
    release_name: Annotated[str, typer.Option(help="Helm release name")] = "release-name",
    namespace: Annotated[str, typer.Option(help="Helm --namespace")] = "",
    values: Annotated[
        list[str] | None,
        typer.Option("--values", "-f", help="Helm value file, relative to PATH (repeatable)"),
    ] = None,
    age_key_file: Annotated[
        Path | None,
        typer.Option(
            "--age-key-file",
            metavar="FILE",
            help="decrypt SOPS-encrypted files with the age private keys in FILE "
            "(AGE-SECRET-KEY-1… lines); default, as sops: $SOPS_AGE_KEY, $SOPS_AGE_KEY_FILE "
            "and $XDG_CONFIG_HOME/sops/age/keys.txt",
        ),
    ] = None,
    show_secrets: Annotated[
        bool,
        typer.Option(
            "--show-secrets",
            help="print Secret values, values decrypted from SOPS (in any kind) and "
            "redacted fields as they are; masked by default "
            "(<redacted:…>, equal values with equal masks)",
        ),
    ] = False,
    redact_rules: Annotated[
        Path | None,
        typer.Option(
            "--redact-rules",
            metavar="FILE",
            help="also mask the fields an Application's or AppProject's spec.redactions "
            "names (FILE: that manifest, or the bare list of {group, kind, fields})",
        ),
    ] = None,
) -> None:
    """Render PATH locally, without a cluster, and print the YAML gitmoor would apply.

    SOPS files are decrypted with local age keys; Secret values are masked unless --show-secrets.
    """
    from gitmoor.cli import output
    from gitmoor.render import RenderOptions, render_app
    from gitmoor.secrets.redact import Redactor

    target = path.resolve()
    repo_root = (root or _git_root(target) or target).resolve()
    rules = _load_rules(redact_rules) if redact_rules is not None else ()
    # Keyed by the app's path: masks are only ever compared within this output.
    redactor = Redactor(f"render:{target}", rules)
    try:
        rel = target.relative_to(repo_root).as_posix() or "."
        result = render_app(
            repo_root,
            rel,
            "local",
            RenderOptions(
                release_name=release_name,
                namespace=namespace,
                value_files=tuple(values or ()),
                decryption=local_keys(age_key_file),
            ),
        )
    except ValueError:
        raise fail(f"{path} is not inside the repository root {repo_root}") from None
    except GitmoorError as e:
        raise fail(redactor.scrub(str(e))) from None
    # Values that were encrypted in Git are masked in whatever kind they landed
    # (a ConfigMap from an encrypted env file), not only in Secrets.
    redactor.learn_secret_values(result.secret_values)
    objs = [m.obj for m in result.manifests]
    if show_secrets:
        shown: list[Any] = objs
    else:
        shown = [redactor.mask(o) for o in objs]
    for w in result.warnings:
        text = w if show_secrets else redactor.scrub(w)
        err.print(f"[yellow]warning:[/yellow] {text}", markup=True)
    sys.stdout.write(output.yaml_dump_all(shown))


def local_keys(key_file: Path | None) -> DecryptionKeys:
    """The age keys ``sops`` itself would use here: ``key_file`` when given, else
    every source sops reads (age ``keysource.go`` ``loadIdentities``:
    ``SOPS_AGE_KEY``, ``SOPS_AGE_KEY_FILE`` and the user's ``sops/age/keys.txt``,
    together). None found is not an error until a file needs decrypting: the
    render then names that file and says where keys are looked for."""
    from gitmoor.render import DecryptionKeys

    texts: list[str] = []
    if key_file is not None:
        texts.append(_read_key_file(key_file, "--age-key-file"))
    else:
        if env_key := os.environ.get("SOPS_AGE_KEY"):
            texts.append(env_key)
        if env_file := os.environ.get("SOPS_AGE_KEY_FILE"):
            texts.append(_read_key_file(Path(env_file), "SOPS_AGE_KEY_FILE"))
        config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        default = config / "sops" / "age" / "keys.txt"
        if default.is_file():
            texts.append(_read_key_file(default, str(default)))
    keys = tuple(
        line.strip()
        for text in texts
        for line in text.splitlines()
        if line.strip().startswith(_AGE_PREFIX)
    )
    if keys:
        return DecryptionKeys(secret=KEYS_WHERE, age=keys)
    where = (
        f"--age-key-file {key_file} holds no age private key (AGE-SECRET-KEY-1… line)"
        if key_file is not None
        else "no age private key: give --age-key-file FILE, or set SOPS_AGE_KEY_FILE or "
        "SOPS_AGE_KEY as for sops"
    )
    return DecryptionKeys(secret=KEYS_WHERE, missing=where)


def _read_key_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"{what}: cannot read the age key file {path}: {e.__class__.__name__}") from None


def _load_rules(path: Path) -> tuple[RedactRule, ...]:
    """The redactions of an Application or AppProject manifest, or a bare list."""
    import yaml

    from gitmoor.model.redaction import parse_redactions

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise fail(f"--redact-rules {path}: cannot read it: {e}") from None
    raw = (doc.get("spec") or {}).get("redactions") if isinstance(doc, dict) else doc
    try:
        return parse_redactions(raw, f"--redact-rules {path}")
    except GitmoorError as e:
        raise fail(str(e)) from None


def _git_root(p: Path) -> Path | None:
    for d in [p, *p.parents]:
        if (d / ".git").exists():
            return d
    return None
