"""Repository credentials kept as Kubernetes Secrets, the way Argo CD keeps them.

A Secret labelled ``gitmoor.io/secret-type: repository`` in gitmoor's namespace
holds ``url`` (a repository URL or a prefix of many) and ``username`` +
``password`` (https; a token goes in ``password``) or ``sshPrivateKey`` (+
``knownHosts``). The longest matching URL prefix wins.

A Secret may carry ``project: NAME``: then only that project's apps use it, and
for them it wins over an unscoped Secret (Argo CD's project-scoped
repositories, ``getRepositorySecret``: the app's project first, then the
unscoped ones; another project's never).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gitmoor.model import ObjectRef
from gitmoor.model.application import DEFAULT_NAMESPACE, REPO_SECRET_LABEL
from gitmoor.source import RepoCredentials, match_credentials, redact_url

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gitmoor.kube import KubeClient


@dataclass(frozen=True, slots=True)
class RepoEntry:
    name: str
    url: str
    auth: str  # "https", "ssh" or "none": never the secret itself
    project: str = ""  # "" for every project
    #: whether a user name is stored (the API says so without saying it)
    has_username: bool = False


def _decode(data: dict[str, str], key: str) -> str | None:
    value = data.get(key)
    return base64.b64decode(value).decode() if value else None


def secret_name(url: str, project: str = "") -> str:
    """One Secret per URL and project, so that a project's credentials for a URL
    sit beside the global ones (Argo CD names them by URL and project too)."""
    key = url if not project else f"{project}\n{url}"
    return "repo-" + hashlib.sha256(key.encode()).hexdigest()[:12]


async def _secrets(kube: KubeClient, namespace: str) -> list[dict[str, object]]:
    ar = await kube.resource("", "v1", "Secret")
    return (await kube.list(ar, namespace, label_selector=f"{REPO_SECRET_LABEL}=repository")).items


async def load_credentials(
    kube: KubeClient, namespace: str = DEFAULT_NAMESPACE
) -> list[RepoCredentials]:
    return credentials_from_secrets(await _secrets(kube, namespace))


def credentials_from_secrets(secrets: Iterable[dict[str, object]]) -> list[RepoCredentials]:
    """Credentials from repository Secrets (as the API or a watch cache returns them)."""
    out = []
    for s in secrets:
        data = s.get("data") or {}
        assert isinstance(data, dict)
        url = _decode(data, "url")
        if not url:
            continue
        out.append(
            RepoCredentials(
                url_prefix=url,
                username=_decode(data, "username"),
                password=_decode(data, "password"),
                ssh_private_key=_decode(data, "sshPrivateKey"),
                known_hosts=_decode(data, "knownHosts"),
                insecure_ignore_host_key=_decode(data, "insecureIgnoreHostKey") == "true",
                project=_decode(data, "project") or "",
            )
        )
    return out


def credentials_for(
    url: str, creds: Iterable[RepoCredentials], project: str
) -> RepoCredentials | None:
    """The credentials an app of ``project`` uses for ``url``: the best match among
    its project's, else among the unscoped; never another project's."""
    every = list(creds)
    scoped = match_credentials(url, [c for c in every if c.project and c.project == project])
    return scoped or match_credentials(url, [c for c in every if not c.project])


async def list_repos(kube: KubeClient, namespace: str = DEFAULT_NAMESPACE) -> list[RepoEntry]:
    entries = []
    for s in await _secrets(kube, namespace):
        data = s.get("data") or {}
        assert isinstance(data, dict)
        url = _decode(data, "url") or ""
        auth = "ssh" if data.get("sshPrivateKey") else "https" if data.get("password") else "none"
        meta = s.get("metadata") or {}
        assert isinstance(meta, dict)
        entries.append(
            RepoEntry(
                str(meta.get("name", "")),
                redact_url(url),
                auth,
                _decode(data, "project") or "",
                has_username=bool(data.get("username")),
            )
        )
    return sorted(entries, key=lambda e: e.url)


async def add_repo(
    kube: KubeClient,
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ssh_private_key: str | None = None,
    known_hosts: str | None = None,
    insecure_ignore_host_key: bool = False,
    namespace: str = DEFAULT_NAMESPACE,
    project: str = "",
) -> str:
    """Write (or replace) the credential Secret for ``url`` (scoped to ``project``
    when given); returns its name."""
    fields = {
        "url": url,
        "username": username,
        "password": password,
        "sshPrivateKey": ssh_private_key,
        "knownHosts": known_hosts,
        "insecureIgnoreHostKey": "true" if insecure_ignore_host_key else None,
        "project": project or None,
    }
    name = secret_name(url, project)
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {REPO_SECRET_LABEL: "repository"},
            },
            "stringData": {k: v for k, v in fields.items() if v is not None},
        },
        force=True,
    )
    return name


async def remove_repo(
    kube: KubeClient, url: str, namespace: str = DEFAULT_NAMESPACE, project: str = ""
) -> bool:
    return await kube.delete(ObjectRef("", "v1", "Secret", namespace, secret_name(url, project)))
