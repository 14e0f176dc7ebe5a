"""Web sessions, held by the server and named by a signed cookie.

The cookie (``gitmoor.session``) carries a random session id signed with the
server key (``server.secretkey`` in ``gitmoor-secret``, Argo CD's key of the same
name): HttpOnly, SameSite=Lax, Secure under TLS. The session itself lives here,
so logout ends it at once (a stolen cookie is dead after logout), which a
self-contained signed token could not do. The same value works as
``Authorization: Bearer`` for scripts that logged in with a password.

Sessions are in the process's memory: a restart of the server logs every browser
out, and two replicas need sticky routing. Argo CD keeps JWTs instead and a
revocation list in Redis; gitmoor has no Redis.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, replace

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.responses import Response

from gitmoor.server.auth.principal import Principal

SESSION_COOKIE = "gitmoor.session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: a session ends after this long, however busy (Argo CD's default session duration)
SESSION_TTL = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    principal: Principal
    #: the token state-changing requests of this session carry (header or form field)
    csrf: str
    expires: float


class SessionStore:
    def __init__(self, key: bytes, *, ttl: float = SESSION_TTL) -> None:
        self._signer = URLSafeSerializer(key, salt="gitmoor.session")
        self._ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal) -> tuple[Session, str]:
        """A new session for ``principal``, and the signed value of its cookie."""
        sid = secrets.token_urlsafe(32)
        session = Session(
            sid,
            replace(principal, session_id=sid),
            secrets.token_urlsafe(32),
            time.time() + self._ttl,
        )
        with self._lock:
            self._purge()
            self._sessions[sid] = session
        return session, str(self._signer.dumps(sid))

    def get(self, token: str | None) -> Session | None:
        """The live session a cookie or bearer value names; None when forged, ended or expired."""
        if not token:
            return None
        try:
            sid = self._signer.loads(token)
        except BadSignature:
            return None
        if not isinstance(sid, str):
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if session.expires < time.time():
                del self._sessions[sid]
                return None
            return session

    def end(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def end_all(self, name: str) -> int:
        """End every session of account ``name`` (its password changed, it was disabled)."""
        with self._lock:
            ids = [s.id for s in self._sessions.values() if s.principal.name == name]
            for sid in ids:
                del self._sessions[sid]
        return len(ids)

    def alive(self, session_id: str) -> bool:
        with self._lock:
            s = self._sessions.get(session_id)
            return s is not None and s.expires >= time.time()

    def __len__(self) -> int:
        return len(self._sessions)

    def _purge(self) -> None:
        now = time.time()
        for sid in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[sid]


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    """The session cookie, as every login (password or OIDC) sets it: HttpOnly (no
    script reads it), SameSite=Lax (no cross-site POST carries it), Secure under TLS."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )
