"""The renderer interface and the data it takes: an opened app and its options."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from gitmoor.model import JSONDict, RenderResult


@dataclass(frozen=True, slots=True)
class DecryptionKeys:
    """The age private keys a render decrypts SOPS files with, and where they came from.

    ``age`` holds the keys themselves: never printed (``repr=False``), never in a
    cache key (:meth:`fingerprint`), handed to ``sops`` through its environment.
    ``missing`` says why there are none (the Secret does not exist, or holds no
    ``*.agekey``); a render that meets an encrypted file then fails with it,
    naming the file.
    """

    #: ``namespace/name`` of the Secret, for messages
    secret: str
    age: tuple[str, ...] = field(default=(), repr=False)
    missing: str = ""

    def fingerprint(self) -> str:
        """What tells two key sets apart in a cache key, without the keys: a render
        made with other keys (rotated, removed) is a different render."""
        h = hashlib.sha256(self.secret.encode())
        for key in self.age:
            h.update(b"\0" + key.encode())
        h.update(b"\0" + self.missing.encode())
        return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """How to render an app; each field says which renderer reads it.

    Mirrors the parts of Argo CD's ``spec.source.helm`` / ``kustomize`` that change
    the output. ``timeout`` is the only field that does not, so it is left out of
    :meth:`cache_key`.
    """

    #: Helm release name; empty means helm's own default for ``helm template``
    #: (``release-name``). The engine passes the app name, as Argo CD does.
    release_name: str = ""
    #: Helm ``--namespace`` (``.Release.Namespace``); empty means ``default``, never
    #: the namespace of whatever kubeconfig context happens to be active.
    namespace: str = ""
    #: Helm value files, relative to the app path; an absolute path is taken
    #: relative to the repository root (Argo CD's rule). All must stay inside it.
    value_files: tuple[str, ...] = ()
    #: Helm inline values, applied after the value files so they win (Argo CD order).
    values: JSONDict = field(default_factory=dict, hash=False)
    #: Helm ``--kube-version`` / ``--api-versions``, so charts that branch on
    #: ``.Capabilities`` render for the target cluster, not for helm's defaults.
    kube_version: str = ""
    api_versions: tuple[str, ...] = ()
    #: Helm: render the chart's ``crds/`` directory too (``--include-crds``).
    include_crds: bool = True
    #: Helm: leave out ``helm.sh/hook: test`` manifests (``--skip-tests``).
    skip_tests: bool = False
    #: Kustomize: let resources/components name git or HTTP URLs. Off by default:
    #: a remote base makes the render depend on something other than the commit.
    allow_remote_bases: bool = False
    #: Seconds each external tool may run before the render is abandoned.
    timeout: float = 120.0
    #: Decrypt SOPS-encrypted files with these keys before rendering (``decrypt``);
    #: None: the app names no decryption, and an encrypted file is refused.
    decryption: DecryptionKeys | None = None
    #: Refuse a Secret that was not encrypted in Git (the project's
    #: ``requireEncryptedSecrets``).
    require_encrypted_secrets: bool = False
    #: Without decryption, render SOPS files as they are (``ENC[…]`` values and
    #: a ``sops`` block) instead of refusing them: ``gitmoor lint`` checks a
    #: repository without its keys. Never for a render that is applied.
    keep_encrypted: bool = False

    def cache_key(self, renderer: str | None = None) -> str:
        """A canonical string of every field that can change what ``renderer`` (a
        renderer's ``name``) outputs; with no renderer named, of every field.

        A directory app reads none of them and a kustomization only
        ``allow_remote_bases``, so apps of one commit and path that differ in their
        release name or destination namespace share one render: a platform's
        per-namespace copies of an app render once per commit, not once per app.
        (Argo CD's repo-server puts the app's name and destination namespace in
        every manifest cache key, its ``manifestCacheKey``, so it renders each
        of those apps anew.)
        """
        fields = asdict(self)
        del fields["timeout"]
        read = _FIELDS_READ.get(renderer) if renderer is not None else None
        if read is not None:
            fields = {name: fields[name] for name in read}
        # Every renderer reads decrypted files: the keys count, by fingerprint.
        fields["decryption"] = self.decryption.fingerprint() if self.decryption else None
        fields["require_encrypted_secrets"] = self.require_encrypted_secrets
        fields["keep_encrypted"] = self.keep_encrypted
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=repr)


#: the options each renderer reads (by ``name``); one not listed (helm) reads them all
_FIELDS_READ: dict[str, tuple[str, ...]] = {
    "directory": (),
    "kustomize": ("allow_remote_bases",),
}


@dataclass(frozen=True, slots=True)
class AppTree:
    """One app inside a checked-out repository, already checked by ``open_app``.

    ``root`` and ``app_dir`` are resolved (no symlinks, no ``..``), and ``app_dir`` is
    inside ``root``; ``path`` is the normalised POSIX path of ``app_dir`` from ``root``.
    """

    root: Path
    app_dir: Path
    path: str
    revision: str

    def repo_relative(self, p: Path) -> str:
        """``p`` as users see it in their repository, for messages."""
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def app_relative(self, p: Path) -> str:
        """``p`` relative to the app path, the form ``Source.file`` takes."""
        try:
            return p.relative_to(self.app_dir).as_posix()
        except ValueError:
            return self.repo_relative(p)


class Renderer(Protocol):
    """Turns one app at one commit into manifests; raises ``UserInputError`` on bad input."""

    @property
    def name(self) -> str: ...

    def render(self, app: AppTree, options: RenderOptions) -> RenderResult: ...
