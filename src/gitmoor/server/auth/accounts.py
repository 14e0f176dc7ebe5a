"""The server's view of local accounts: logins, API tokens, password changes.

Reads come from the server's watch caches of ``gitmoor-cm`` and
``gitmoor-secret`` (the ``configmap``/``secret`` callables), so a login or a
bearer token check costs no API request. Writes go through
:mod:`gitmoor.settings.accounts`, and the object a write returned is kept and
preferred until the watch delivers that version or a newer one: a token is
usable, and a revoked one refused, the moment the call that made the change
returns, not a watch round-trip later.

argon2 is deliberately slow (tens of milliseconds of CPU), so every hash and
verify runs in a worker thread: a burst of logins does not stall the event loop
that serves the SSE streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from gitmoor.server.auth.principal import Principal
from gitmoor.settings import accounts as settings
from gitmoor.settings.accounts import (
    SERVER_KEY,
    Account,
    AccountError,
    TokenEntry,
    WrongPasswordError,
    parse_accounts,
    secret_data,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from gitmoor.kube import KubeClient
    from gitmoor.model import JSONDict
    from gitmoor.server.auth.sessions import SessionStore

log = logging.getLogger("gitmoor.server.accounts")


def _rv(obj: JSONDict | None) -> int:
    meta = (obj or {}).get("metadata") or {}
    try:
        return int(str(meta.get("resourceVersion") or "0"))
    except ValueError:
        return 0


class _Fresh:
    """The newer of a watch cache's copy of one object and the copy our own last
    write returned. resourceVersions are opaque in principle; the API server's are
    etcd revisions, and this comparison only decides which of two copies of the
    same object to read."""

    def __init__(self, watched: Callable[[], JSONDict | None]) -> None:
        self._watched = watched
        self._written: JSONDict | None = None
        #: the watch held a copy when we wrote: None from it later means deleted
        self._watch_had_it = False

    def get(self) -> JSONDict | None:
        watched = self._watched()
        if self._written is not None:
            if watched is None and self._watch_had_it:
                # Deleted (or unlabelled) since our write: an operator deleting
                # gitmoor-secret must end the tokens in our copy too.
                self._written = None
            elif watched is not None and _rv(watched) >= _rv(self._written):
                self._written = None
            else:
                return self._written
        return watched

    def wrote(self, obj: JSONDict | None) -> None:
        if obj is not None and _rv(obj) > _rv(self.get()):
            self._written = obj
            self._watch_had_it = self._watched() is not None


class AccountStore:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        *,
        configmap: Callable[[], JSONDict | None],
        secret: Callable[[], JSONDict | None],
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self._configmap = _Fresh(configmap)
        self._secret = _Fresh(secret)
        #: what each account's sessions were opened against (see reconcile_sessions)
        self._seen: dict[str, tuple[str, bool]] | None = None
        self._parsed: tuple[tuple[int, int, int, int], dict[str, Account]] | None = None

    # ------------------------------------------------------------------ reads

    def accounts(self) -> dict[str, Account]:
        """Parsed once per version of the two objects: a bearer token is checked on
        every API request, and decoding the Secret each time would be most of it."""
        cm, secret = self._configmap.get(), self._secret.get()
        key = (id(cm), _rv(cm), id(secret), _rv(secret))
        if self._parsed is None or self._parsed[0] != key:
            self._parsed = (key, parse_accounts(cm, secret))
        return self._parsed[1]

    def list_accounts(self) -> list[Account]:
        return list(self.accounts().values())

    def get(self, name: str) -> Account | None:
        return self.accounts().get(name)

    def list_tokens(self, name: str) -> list[TokenEntry]:
        account = self.get(name)
        if account is None:
            raise AccountError(f"account {name} does not exist", concerns=name)
        return list(account.tokens)

    async def server_key(self) -> bytes:
        """The session signing key, ``server.secretkey``; created when absent (a
        fresh namespace, or an installation older than the server)."""
        key = secret_data(self._secret.get()).get(SERVER_KEY)
        if not key:
            written = await settings.ensure_server_key(self.kube, self.namespace)
            self._secret.wrote(written)
            key = secret_data(written).get(SERVER_KEY)
        assert key
        return key.encode()

    # ------------------------------------------------------------------ checks

    async def login(self, name: str, password: str) -> Principal | None:
        """The principal for a right name and password of an enabled account with
        the ``login`` capability; None otherwise, after the same amount of work."""
        account = self.get(name)
        ok = await asyncio.to_thread(settings.verify_password, account, password)
        if not ok or account is None:
            return None
        return Principal(account.name, via="session")

    async def verify_token(self, token: str) -> Principal | None:
        found = settings.verify_token(self.accounts().values(), token, now=time.time())
        if found is None:
            return None
        account, entry = found
        return Principal(account.name, via="token", token_id=entry.id)

    # ------------------------------------------------------------------ sessions

    @staticmethod
    def _fingerprint(account: Account) -> tuple[str, bool]:
        return account.password_hash, account.can_login

    def reconcile_sessions(self, sessions: SessionStore) -> list[str]:
        """End the sessions of every account whose password changed, or that was
        disabled, removed or lost its ``login`` capability, since the last call;
        returns their names. For changes made behind the server's back (``gitmoor
        admin reset-password``, an edited ConfigMap): call it when the settings
        watch delivers a change. The first call only records the current state."""
        now = {a.name: self._fingerprint(a) for a in self.list_accounts()}
        before, self._seen = self._seen, now
        if before is None:
            return []
        changed = [name for name, fp in before.items() if now.get(name) != fp]
        for name in changed:
            ended = sessions.end_all(name)
            if ended:
                log.info(
                    "event=sessions_ended account=%s reason=account_changed count=%d", name, ended
                )
        return changed

    def _settled(self, name: str) -> None:
        """Our own change to ``name`` is known: the watch's copy of it later must not
        end the sessions opened since (a login with the new password)."""
        account = self.get(name)
        if self._seen is not None and account is not None:
            self._seen[name] = self._fingerprint(account)

    # ------------------------------------------------------------------ writes

    async def update_password(
        self,
        name: str,
        current: str,
        new: str,
        *,
        sessions: SessionStore,
        caller: str | None = None,
    ) -> int:
        """Set ``name``'s password after checking ``current``: the password of
        ``caller`` (default ``name``), as Argo CD's UpdatePassword asks for the
        logged-in user's own password even when an admin changes another
        account's. Ends every session of ``name`` (a changed password must log a
        thief out); returns how many were ended."""
        settings.check_password(new)
        who = caller or name
        if self.get(name) is None:
            raise AccountError(f"account {name} does not exist", concerns=name)
        if not await asyncio.to_thread(settings.verify_password, self.get(who), current):
            raise WrongPasswordError("the current password is wrong", concerns=who)
        written = await settings.set_password(self.kube, self.namespace, name, new)
        self._secret.wrote(written)
        self._settled(name)
        ended = sessions.end_all(name)
        log.info("event=password_updated account=%s by=%s sessions_ended=%d", name, who, ended)
        return ended

    async def generate_token(
        self, name: str, expires_in: float | None = None, token_id: str | None = None
    ) -> tuple[str, str]:
        tid, token, written = await settings.add_token(
            self.kube, self.namespace, name, expires_in, token_id
        )
        self._secret.wrote(written)
        return tid, token

    async def revoke_token(self, name: str, token_id: str) -> bool:
        found, written = await settings.remove_token(self.kube, self.namespace, name, token_id)
        self._secret.wrote(written)
        return found
