"""`gitmoor secret keygen|encrypt|decrypt|edit|rotate|install-key`: SOPS files
with age keys, for authors who have no ``sops`` installed.

The files are read and written by :mod:`gitmoor.secrets.sopsfile`, a Python
implementation of sops's format that the real ``sops`` (which gitmoor runs at
render time) decrypts, and the other way round. Keys come from where sops looks
for them: ``--age-key-file``, else ``$SOPS_AGE_KEY_FILE``, else ``$SOPS_AGE_KEY``,
else ``$XDG_CONFIG_HOME/sops/age/keys.txt`` (``~/.config/sops/age/keys.txt``).

Nothing here prints or logs a private key or a plaintext value, except
``decrypt``'s standard output and the file ``edit`` hands to ``$EDITOR`` (mode
0600 in a private 0700 directory, removed afterwards).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gitmoor.cli._common import State, err, fail, out, run

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient
    from gitmoor.secrets.sopsfile import EncryptionRules, Format

secret_cmd = typer.Typer(
    help="Encrypt Secrets for Git with SOPS and age (no sops binary needed).",
    no_args_is_help=True,
)

#: where sops looks for age keys when nothing else is set (``age/keysource.go``)
_SOPS_KEYS_PATH = Path("sops") / "age" / "keys.txt"
#: the label `install-key` puts on the Secret, so `kubectl get secret -l` finds it
KEY_SECRET_LABEL = "gitmoor.io/secret-type"
KEY_SECRET_TYPE = "sops-age"
_AGE_KEY_SUFFIX = ".agekey"  # what Flux's kustomize-controller and gitmoor's engine read

_FORMAT_HELP = "yaml, json, dotenv or binary (default: by the file name, as sops: binary otherwise)"
_KEY_FILE_HELP = (
    "age key file (default: $SOPS_AGE_KEY_FILE, then $SOPS_AGE_KEY, then "
    "~/.config/sops/age/keys.txt)"
)

FormatOpt = Annotated[str | None, typer.Option("--format", help=_FORMAT_HELP)]
KeyFileOpt = Annotated[Path | None, typer.Option("--age-key-file", help=_KEY_FILE_HELP)]


def _default_keys_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / _SOPS_KEYS_PATH


def _fmt(path: Path, given: str | None) -> Format:
    from gitmoor.secrets.sopsfile import FORMATS, format_for_path

    if given is None:
        return format_for_path(path.name)
    for f in FORMATS:
        if f == given:
            return f
    raise fail(f"--format must be one of {', '.join(FORMATS)}, not {given!r}")


def _identities(key_file: Path | None) -> list[str]:
    """The age identities, looked up in sops's order; never printed."""
    from gitmoor.secrets.sopsfile import find_identities

    if key_file is not None:
        source, text = str(key_file), _read_text(key_file)
    elif os.environ.get("SOPS_AGE_KEY_FILE"):
        path = Path(os.environ["SOPS_AGE_KEY_FILE"])
        source, text = f"$SOPS_AGE_KEY_FILE ({path})", _read_text(path)
    elif os.environ.get("SOPS_AGE_KEY"):
        source, text = "$SOPS_AGE_KEY", os.environ["SOPS_AGE_KEY"]
    else:
        path = _default_keys_file()
        if not path.is_file():
            raise fail(
                "no age key: give --age-key-file, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY, "
                f"or keep your keys in {path} (`gitmoor secret keygen`)"
            )
        source, text = str(path), _read_text(path)
    found = find_identities(text)
    if not found:
        raise fail(f"{source} holds no age private key (AGE-SECRET-KEY-1…)")
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise fail(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise fail(f"cannot read {path}: {e.strerror}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping its mode: an
    interrupted write never leaves half a file in the repository."""
    import tempfile

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@secret_cmd.command("keygen")
def keygen(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="key file to write (mode 0600; a new key is appended to an existing one, "
            "as `age-keygen >> FILE`); default ~/.config/sops/age/keys.txt, where sops "
            "and `gitmoor secret decrypt` look",
        ),
    ] = None,
) -> None:
    """Make an age key pair; print its public recipient (age1…).

    The private key goes to the key file (mode 0600), in age-keygen's format with
    its "# created:" and "# public key:" comments. The recipient is what
    `encrypt --age`, `rotate --add-age` and `.sops.yaml` take."""
    from gitmoor.secrets import agekeys

    path = output or _default_keys_file()
    pair = agekeys.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            if f.tell() > 0:
                f.write("\n")
            f.write(pair.file_text())
        path.chmod(0o600)
    except OSError as e:
        raise fail(f"cannot write {path}: {e.strerror}") from None
    err.print(f"age key written to {path} (keep it private; never commit it)")
    out.print(pair.recipient)


@secret_cmd.command("encrypt")
def encrypt(
    file: Annotated[Path, typer.Argument(help="plaintext file (YAML, JSON, .env, other: binary)")],
    age: Annotated[
        list[str] | None,
        typer.Option(
            "--age",
            help="age recipient (age1…), repeatable or comma-separated; overrides the "
            "recipients of the matching .sops.yaml creation rule",
        ),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", "-i", help="replace FILE instead of printing")
    ] = False,
    fmt: FormatOpt = None,
    encrypted_regex: Annotated[
        str | None,
        typer.Option(help="encrypt only values below keys matching this regex (as sops)"),
    ] = None,
    unencrypted_regex: Annotated[
        str | None,
        typer.Option(help="leave values below keys matching this regex readable (as sops)"),
    ] = None,
    encrypted_suffix: Annotated[
        str | None,
        typer.Option(help="encrypt only values below keys ending in this suffix (as sops)"),
    ] = None,
    unencrypted_suffix: Annotated[
        str | None,
        typer.Option(
            help="leave values below keys ending in this suffix readable (sops's default: "
            "_unencrypted)"
        ),
    ] = None,
    mac_only_encrypted: Annotated[
        bool,
        typer.Option(
            "--mac-only-encrypted",
            help="the MAC covers only the encrypted values, so readable ones may change (as sops)",
        ),
    ] = False,
) -> None:
    """Encrypt FILE for age recipients, as `sops --encrypt` would.

    The nearest .sops.yaml (from FILE's directory up) gives the recipients and which
    values to encrypt (path_regex, age, encrypted_regex, unencrypted_regex,
    encrypted_suffix, unencrypted_suffix). A Kubernetes Secret with no such rule
    gets only its data and stringData encrypted (encrypted_regex
    ^(data|stringData)$, as Flux's guide sets), so kind and name stay readable.
    --encrypted-regex, --unencrypted-regex, --encrypted-suffix or
    --unencrypted-suffix (at most one) overrides both; --mac-only-encrypted as in
    sops. An already encrypted file is
    refused."""
    from dataclasses import replace

    from gitmoor.model import GitmoorError
    from gitmoor.secrets import sopsconfig, sopsfile

    kind = _fmt(file, fmt)
    plain = _read_bytes(file)
    if sopsfile.is_encrypted(plain, kind):
        raise fail(f"{file} is already encrypted (use `gitmoor secret edit` or `rotate`)")
    recipients = [r.strip() for a in age or [] for r in a.split(",") if r.strip()]
    try:
        rule = sopsconfig.rule_for(file)
    except GitmoorError as e:
        if not recipients:
            raise fail(str(e)) from None
        rule = None  # --age names the recipients; the config's rules do not apply then
    if not recipients and rule is not None:
        recipients = list(rule.age)
    if not recipients:
        raise fail(
            f"no age recipient for {file}: give --age age1… or a .sops.yaml creation rule with age:"
        )
    rules: EncryptionRules | None = rule.rules if rule is not None else None
    mac_only = mac_only_encrypted or (rules.mac_only_encrypted if rules else False)
    flags = sopsfile.EncryptionRules(
        encrypted_regex=encrypted_regex,
        unencrypted_regex=unencrypted_regex,
        encrypted_suffix=encrypted_suffix,
        unencrypted_suffix=unencrypted_suffix,
        mac_only_encrypted=mac_only,
    )
    if flags.given:
        rules = flags
    elif (rules is None or not rules.given) and sopsfile.is_kubernetes_secret(plain, kind):
        rules = sopsfile.EncryptionRules(
            encrypted_regex=sopsfile.SECRET_ENCRYPTED_REGEX, mac_only_encrypted=mac_only
        )
    elif mac_only:
        rules = replace(rules or sopsfile.EncryptionRules(), mac_only_encrypted=True)
    try:
        text = sopsfile.encrypt(plain, kind, recipients, rules, where=str(file))
    except GitmoorError as e:
        raise fail(str(e)) from None
    if in_place:
        _write_atomic(file, text.encode())
        err.print(f"encrypted {file} for {', '.join(recipients)}")
    else:
        sys.stdout.write(text)


@secret_cmd.command("decrypt")
def decrypt(
    file: Annotated[Path, typer.Argument(help="SOPS-encrypted file")],
    key_file: KeyFileOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Print the plaintext of a SOPS file (MAC verified), as `sops --decrypt`."""
    from gitmoor.model import GitmoorError
    from gitmoor.secrets import sopsfile

    kind = _fmt(file, fmt)
    try:
        plain = sopsfile.decrypt_bytes(
            _read_bytes(file), kind, _identities(key_file), where=str(file)
        )
    except GitmoorError as e:
        raise fail(str(e)) from None
    sys.stdout.buffer.write(plain)
    sys.stdout.flush()


@secret_cmd.command("edit")
def edit(
    file: Annotated[Path, typer.Argument(help="SOPS-encrypted file")],
    key_file: KeyFileOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Edit a SOPS file in $EDITOR (default vi) and encrypt it again, as `sops edit`.

    The plaintext lives only in a private temporary file (0600, in a 0700
    directory, removed afterwards). The same data key and recipients are kept, and
    values left unchanged keep their ciphertext; a file left unchanged is not
    rewritten at all."""
    import shlex
    import shutil
    import subprocess
    import tempfile

    from gitmoor.model import GitmoorError
    from gitmoor.secrets import sopsfile

    kind = _fmt(file, fmt)
    try:
        doc = sopsfile.open_document(
            _read_bytes(file), kind, _identities(key_file), where=str(file)
        )
    except GitmoorError as e:
        raise fail(str(e)) from None
    before = doc.plaintext()
    editor = shlex.split(os.environ.get("EDITOR") or "vi")
    if not editor:
        raise fail("$EDITOR is empty")
    workdir = tempfile.mkdtemp(prefix="gitmoor-secret-")  # mode 0700
    try:
        tmp = Path(workdir) / file.name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(before)
        try:
            status = subprocess.run([*editor, str(tmp)], check=False).returncode
        except OSError as e:
            raise fail(f"cannot run the editor {editor[0]!r}: {e.strerror}") from None
        if status != 0:
            raise fail(f"the editor exited with status {status}; {file} was left as it was")
        after = tmp.read_bytes()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if after == before:
        err.print(f"{file} unchanged")
        return
    try:
        text = doc.encrypt_plaintext(after)
    except GitmoorError as e:
        raise fail(f"{e}; {file} was left as it was") from None
    _write_atomic(file, text.encode())
    err.print(f"{file} encrypted again")


def _sops_files(roots: list[Path]) -> list[tuple[Path, Format]]:
    """Every SOPS file at or below ``roots`` (``.git`` and other hidden directories
    skipped): YAML/JSON/dotenv by name, binary-format files by their JSON envelope."""
    from gitmoor.secrets import sopsfile

    found: list[tuple[Path, Format]] = []

    def consider(path: Path) -> None:
        kind = sopsfile.format_for_path(path.name)
        try:
            if path.stat().st_size > 8 * 1024 * 1024:
                return
            data = path.read_bytes()
        except OSError:
            return
        if b"ENC[AES256_GCM," not in data:
            return
        if sopsfile.is_encrypted(data, kind):
            found.append((path, kind))

    for root in roots:
        if root.is_file():
            before = len(found)
            consider(root)
            if len(found) == before:
                raise fail(f"{root} is not a SOPS-encrypted file")
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                consider(Path(dirpath) / name)
    return found


@secret_cmd.command("rotate")
def rotate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="SOPS files or directories (default: every SOPS file below .)"),
    ] = None,
    add_age: Annotated[
        list[str] | None,
        typer.Option("--add-age", help="age recipient to add (repeatable or comma-separated)"),
    ] = None,
    rm_age: Annotated[
        list[str] | None,
        typer.Option("--rm-age", help="age recipient to remove (repeatable or comma-separated)"),
    ] = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Re-encrypt SOPS files for new recipients under a new data key (sops rotate).

    As `sops rotate --add-age/--rm-age`: a removed key opens none of the new
    files. Every file is decrypted and re-encrypted before any is written, so a file that
    fails leaves all of them as they were."""
    from gitmoor.model import GitmoorError
    from gitmoor.secrets import agekeys, sopsfile

    def split(values: list[str] | None) -> list[str]:
        return [r.strip() for v in values or [] for r in v.split(",") if r.strip()]

    add, remove = split(add_age), split(rm_age)
    try:
        for r in add:
            agekeys.check_recipient(r, "--add-age")
    except GitmoorError as e:
        raise fail(str(e)) from None
    roots = paths or [Path()]
    for p in roots:
        if not p.exists():
            raise fail(f"{p} does not exist")
    files = _sops_files(roots)
    if not files:
        raise fail("no SOPS-encrypted file found in " + ", ".join(str(p) for p in roots))
    try:
        had = {
            r
            for path, kind in files
            for r in sopsfile.read_metadata(path.read_bytes(), kind, where=str(path)).recipients
        }
    except GitmoorError as e:
        raise fail(str(e)) from None
    absent = [r for r in remove if r not in had]
    if absent:
        raise fail(
            f"--rm-age {', '.join(absent)}: a recipient of none of the files; no file was changed"
        )
    identities = _identities(key_file)
    results: list[tuple[Path, str]] = []
    try:
        for path, kind in files:
            results.append(
                (
                    path,
                    sopsfile.rotate(
                        path.read_bytes(),
                        kind,
                        identities,
                        add=add,
                        remove=remove,
                        where=str(path),
                    ),
                )
            )
    except GitmoorError as e:
        raise fail(f"{e}; no file was changed") from None
    for path, text in results:
        _write_atomic(path, text.encode())
        now = sopsfile.read_metadata(text, dict(files)[path], where=str(path)).recipients
        out.print(f"rotated {path} (recipients: {', '.join(now)})")


@secret_cmd.command("install-key")
def install_key(
    name: Annotated[str, typer.Argument(help="name of the Secret that holds the keys")],
    key_file: Annotated[
        Path, typer.Option("--age-key-file", help="age key file (age-keygen's format)")
    ],
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="namespace of the Secret (default: the apps namespace, --apps-namespace)",
        ),
    ] = None,
    entry: Annotated[
        str,
        typer.Option(
            "--entry", help="key of the Secret's data that holds the keys (must end in .agekey)"
        ),
    ] = "age.agekey",
) -> None:
    """Store age private keys in the cluster Secret NAME, for decryption at render time.

    NAME is the Secret an Application's spec.source.decryption.secretRef names; the
    keys go under ENTRY (age.agekey by default). Other .agekey entries of the Secret are kept, so a new key can sit beside the
    old one while files are rotated. The Secret is labelled
    gitmoor.io/secret-type=sops-age. The keys are never printed; their public
    recipients are."""
    import base64

    from gitmoor.model import ObjectRef
    from gitmoor.secrets import agekeys
    from gitmoor.secrets.sopsfile import find_identities

    if not entry.endswith(_AGE_KEY_SUFFIX) or "/" in entry:
        raise fail(f"--entry must be a key name ending in {_AGE_KEY_SUFFIX}, not {entry!r}")
    identities = find_identities(_read_text(key_file))
    if not identities:
        raise fail(f"{key_file} holds no age private key (AGE-SECRET-KEY-1…)")
    recipients = [agekeys.public_of(i) for i in identities]
    body = "".join(f"# public key: {r}\n{i}\n" for r, i in zip(recipients, identities, strict=True))
    ns = namespace or State.namespace

    async def go(kube: KubeClient) -> None:
        live = await kube.get(ObjectRef("", "v1", "Secret", ns, name))
        data: dict[str, str] = {}
        labels: dict[str, str] = {}
        if live is not None:
            old = live.get("data")
            if isinstance(old, dict):
                data.update({k: v for k, v in old.items() if isinstance(v, str)})
            if live.get("type") not in (None, "Opaque"):
                raise fail(f"Secret {ns}/{name} has type {live.get('type')}, not Opaque")
        data[entry] = base64.b64encode(body.encode()).decode()
        labels[KEY_SECRET_LABEL] = KEY_SECRET_TYPE
        await kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "data": data,
            },
            force=True,
        )

    run(go)
    out.print(
        f"stored {len(identities)} age key(s) in Secret {ns}/{name} under {entry} "
        f"(recipients: {', '.join(recipients)})"
    )
