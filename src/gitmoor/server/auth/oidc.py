"""OIDC login (authorization code flow with PKCE S256) and OIDC ID tokens as bearer.

Configured as Argo CD configures it: the ``oidc.config`` key of ``gitmoor-cm``
holds YAML with ``name``, ``issuer``, ``clientID``, ``clientSecret``,
``requestedScopes`` (default ``openid, profile, email, groups``) and
``groupsClaim`` (default ``groups``). A ``clientSecret`` that starts with ``$``
names a key of ``gitmoor-secret`` (``$oidc.clientSecret``), or ``$secret:key`` a
key of another Secret labelled ``app.kubernetes.io/part-of=gitmoor``, exactly as
Argo CD reads ``$oidc.clientSecret`` from ``argocd-secret``. The secret is looked
up at each code exchange, so rotating it needs no restart.

The flow, as Argo CD's ``/auth/login`` and ``/auth/callback`` run it:

1. ``GET /auth/login`` makes a random ``state``, ``nonce`` and PKCE verifier,
   keeps them in the ``gitmoor.oidc`` cookie (signed with the server key like
   the session cookie, HttpOnly, SameSite=Lax, five minutes, Argo CD's
   ``StateCookieMaxAge``) and redirects to the provider's authorization
   endpoint with ``code_challenge_method=S256``.
2. ``GET /auth/callback`` checks ``state`` against the cookie, exchanges the code
   with the verifier (and the client secret), validates the ID token (signature
   against the provider's JWKS, ``iss``, ``aud`` == clientID, ``exp``,
   ``nonce``), opens a session for ``email`` (or ``sub``) with the groups claim
   as RBAC groups (Argo CD's ``scopes: [groups]``: ``g, <group>, role:...``), and
   redirects to ``/``. Every failure is a 401 with a sentence, never a 500.

Argo CD also accepts an OIDC ID token as ``Authorization: Bearer``
(:meth:`OidcProvider.verify_bearer`): same checks, without the nonce.

Discovery and JWKS are fetched with httpx and kept; an ID token whose ``kid``
the kept JWKS lacks makes one refetch (the provider rotated its keys), at most
every :data:`JWKS_REFRESH_INTERVAL` seconds so a stream of garbage bearer tokens
cannot turn the server into a load generator against the provider (go-oidc's
remote key set behaves alike). authlib's OAuth 2 client primitives build the
requests and check PKCE; joserfc (authlib's JOSE layer) verifies signatures;
authlib's ``CodeIDToken`` checks the claims. authlib's ``httpx_client`` module is
not used: on httpx (rather than its ``httpx2`` fork) it is deprecated.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import html
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel

from gitmoor.model import PermanentError, UserInputError
from gitmoor.server.auth.principal import Principal
from gitmoor.server.auth.sessions import set_session_cookie
from gitmoor.server.deps import client_address, server_state
from gitmoor.settings.accounts import secret_data

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gitmoor.model import JSONDict
    from gitmoor.server.state import ServerState

log = logging.getLogger("gitmoor.server.oidc")

#: the key of ``gitmoor-cm`` that holds the YAML (Argo CD: ``oidc.config`` of ``argocd-cm``)
OIDC_CONFIG_KEY = "oidc.config"
#: the Secret a bare ``$key`` in ``clientSecret`` points into
DEFAULT_SECRET = "gitmoor-secret"
DEFAULT_SCOPES = ("openid", "profile", "email", "groups")
DEFAULT_GROUPS_CLAIM = "groups"
LOGIN_PATH = "/auth/login"
CALLBACK_PATH = "/auth/callback"
#: the cookie that carries state, nonce and PKCE verifier from login to callback
STATE_COOKIE = "gitmoor.oidc"
#: how long a login may take at the provider (Argo CD's ``StateCookieMaxAge``: 5 minutes)
STATE_TTL = 300
#: ID token signatures we accept: asymmetric only. ``none`` is no signature, and an
#: HMAC algorithm would turn the client secret (which the provider also knows) into
#: a key anyone holding it could sign users with.
ASYMMETRIC_ALGS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: the least time between two JWKS fetches triggered by an unknown ``kid``
JWKS_REFRESH_INTERVAL = 5.0
#: clock skew allowed on ``exp`` and ``iat`` (seconds)
LEEWAY = 30
HTTP_TIMEOUT = 10.0


class OidcError(PermanentError):
    """A login or an ID token refused; ``str()`` is the sentence a user reads.
    Never carries a token or the client secret."""


class ProviderUnreachableError(OidcError):
    """The provider did not answer (network, 5xx, not JSON)."""


# ---------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """``oidc.config`` as written (the client secret still a ``$`` reference, if one)."""

    name: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    requested_scopes: tuple[str, ...] = DEFAULT_SCOPES
    groups_claim: str = DEFAULT_GROUPS_CLAIM


def _text(doc: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise UserInputError(f"{OIDC_CONFIG_KEY}: {key} is required", concerns=key)
        return ""
    if not isinstance(value, str):
        raise UserInputError(f"{OIDC_CONFIG_KEY}: {key} must be a string", concerns=key)
    return value.strip()


def parse_oidc_config(text: str) -> OidcConfig:
    """Parse the YAML of ``oidc.config``; :class:`UserInputError` names what is wrong.
    Keys gitmoor does not use (Argo CD's ``logoutURL``, ``rootCA``, ...) are ignored,
    as Argo CD ignores keys it does not know."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserInputError(f"{OIDC_CONFIG_KEY} is not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise UserInputError(f"{OIDC_CONFIG_KEY} must be a YAML mapping")
    issuer = _text(doc, "issuer", required=True).rstrip("/")
    if not issuer.startswith(("https://", "http://")):
        raise UserInputError(f"{OIDC_CONFIG_KEY}: issuer must be an http(s) URL", concerns=issuer)
    scopes_raw = doc.get("requestedScopes")
    scopes: tuple[str, ...]
    if scopes_raw is None:
        scopes = DEFAULT_SCOPES
    elif isinstance(scopes_raw, list) and all(isinstance(s, str) and s for s in scopes_raw):
        scopes = tuple(scopes_raw)
        if "openid" not in scopes:
            # Without openid the provider returns no ID token (OIDC Core 3.1.2.1).
            scopes = ("openid", *scopes)
    else:
        raise UserInputError(
            f"{OIDC_CONFIG_KEY}: requestedScopes must be a list of strings",
            concerns="requestedScopes",
        )
    name = _text(doc, "name", required=False) or "SSO"
    return OidcConfig(
        name=name,
        issuer=issuer,
        client_id=_text(doc, "clientID", required=True),
        client_secret=_text(doc, "clientSecret", required=False),
        requested_scopes=scopes,
        groups_claim=_text(doc, "groupsClaim", required=False) or DEFAULT_GROUPS_CLAIM,
    )


def oidc_config_text(configmap: JSONDict | None) -> str:
    """The raw ``oidc.config`` of a ``gitmoor-cm`` object ("" when absent)."""
    data = (configmap or {}).get("data") or {}
    value = data.get(OIDC_CONFIG_KEY) if isinstance(data, dict) else None
    return value.strip() if isinstance(value, str) else ""


def resolve_secret(value: str, secret: Callable[[str], JSONDict | None]) -> str:
    """The client secret ``value`` stands for. ``$key`` is a key of
    ``gitmoor-secret``; ``$name:key`` a key of Secret ``name`` (Argo CD's
    ``$<secret>:<key>``); anything else is the secret itself. ``secret(name)``
    returns the Secret object (from the server's watch). Errors name the key,
    never a value."""
    if not value.startswith("$"):
        return value
    ref = value[1:]
    name, sep, key = ref.partition(":")
    if not sep:
        name, key = DEFAULT_SECRET, ref
    if not name or not key:
        raise UserInputError(
            f"{OIDC_CONFIG_KEY}: clientSecret {value!r} must be $key or $secret:key",
            concerns="clientSecret",
        )
    found = secret_data(secret(name)).get(key)
    if not found:
        raise UserInputError(
            f"{OIDC_CONFIG_KEY}: clientSecret refers to key {key!r} of Secret {name}, "
            "which is missing or empty",
            concerns=f"{name}/{key}",
        )
    return found


# ---------------------------------------------------------------------- provider


def _kid(token: str) -> str | None:
    """The ``kid`` of a compact JWS, read without verifying (to decide whether a
    JWKS refetch could help); None when the token is not a JWS at all."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and all(token.split("."))


class OidcProvider:
    """One configured OIDC provider: discovery, JWKS, the code exchange and ID
    token validation. Built by :class:`~gitmoor.server.state.ServerState` from
    ``gitmoor-cm`` and rebuilt when ``oidc.config`` changes."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        redirect_uri: str,
        secret: Callable[[str], JSONDict | None],
        reserved: Callable[[str], bool] = lambda name: False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.redirect_uri = redirect_uri
        self._secret = secret
        self._reserved = reserved
        self._transport = transport
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_fetched = 0.0
        self._lock = asyncio.Lock()
        #: the ``oidc.config`` text this provider was built from (to notice a change)
        self.source = ""

    @property
    def name(self) -> str:
        """What the login page's button says: "Log in with <name>"."""
        return self.config.name

    @property
    def login_path(self) -> str:
        return LOGIN_PATH

    # ------------------------------------------------------------------ HTTP

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT, transport=self._transport)

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._client() as c:
                r = await c.get(url, headers={"Accept": "application/json"})
            r.raise_for_status()
            doc = r.json()
        except (httpx.HTTPError, ValueError) as e:
            log.warning("event=oidc_fetch_failed what=%s url=%s error=%s", what, url, e)
            raise ProviderUnreachableError(
                f"could not read the provider's {what} from {url}", concerns=url
            ) from e
        if not isinstance(doc, dict):
            raise ProviderUnreachableError(f"the provider's {what} is not a JSON object")
        return doc

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, fetched once (OIDC Discovery 1.0 section 4)."""
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            if self._metadata is None:
                url = f"{self.config.issuer}/.well-known/openid-configuration"
                doc = await self._get_json(url, "discovery document")
                # Discovery 4.3: the issuer in the document MUST equal the one we asked.
                if str(doc.get("issuer", "")).rstrip("/") != self.config.issuer:
                    raise OidcError(
                        f"the discovery document's issuer {doc.get('issuer')!r} is not "
                        f"the configured issuer {self.config.issuer}",
                        concerns=url,
                    )
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(doc.get(key), str):
                        raise OidcError(f"the discovery document has no {key}", concerns=url)
                self._metadata = doc
                log.info("event=oidc_discovered issuer=%s", self.config.issuer)
        assert self._metadata is not None
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The provider's JWKS; ``refresh`` refetches unless that happened just now."""
        if self._keys is not None and not refresh:
            return self._keys
        meta = await self.metadata()
        async with self._lock:
            recent = time.monotonic() - self._keys_fetched < JWKS_REFRESH_INTERVAL
            if self._keys is None or (refresh and not recent):
                doc = await self._get_json(str(meta["jwks_uri"]), "JWKS")
                try:
                    self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
                except (JoseError, ValueError, KeyError, TypeError) as e:
                    raise OidcError("the provider's JWKS cannot be read") from e
                self._keys_fetched = time.monotonic()
                log.info(
                    "event=oidc_jwks_fetched issuer=%s keys=%d",
                    self.config.issuer,
                    len(self._keys.keys),
                )
        assert self._keys is not None
        return self._keys

    def _algorithms(self, meta: Mapping[str, Any]) -> list[str]:
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = sorted(a for a in offered if isinstance(a, str) and a in ASYMMETRIC_ALGS)
        return algs or ["RS256"]

    # ------------------------------------------------------------------ the flow

    async def authorization_url(self, *, state: str, nonce: str, verifier: str) -> str:
        meta = await self.metadata()
        url: str = prepare_grant_uri(
            meta["authorization_endpoint"],
            client_id=self.config.client_id,
            response_type="code",
            redirect_uri=self.redirect_uri,
            scope=list(self.config.requested_scopes),
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url

    def _auth_method(self, meta: Mapping[str, Any]) -> str:
        """``client_secret_basic`` unless the provider only takes ``client_secret_post``
        (its default per OIDC Discovery when unlisted); ``none`` without a secret."""
        if not self.config.client_secret:
            return "none"
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if "client_secret_basic" not in methods and "client_secret_post" in methods:
            return "client_secret_post"
        return "client_secret_basic"

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """Trade the authorization code (and the PKCE verifier) for tokens."""
        meta = await self.metadata()
        secret = resolve_secret(self.config.client_secret, self._secret)
        body = prepare_token_request(
            "authorization_code",
            redirect_uri=self.redirect_uri,
            code=code,
            code_verifier=verifier,
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(self.config.client_id, secret, self._auth_method(meta))
        url, headers, body = auth.prepare("POST", meta["token_endpoint"], headers, body)
        try:
            async with self._client() as c:
                r = await c.post(url, content=body.encode(), headers=headers)
        except httpx.HTTPError as e:
            log.warning("event=oidc_token_failed error=%s", type(e).__name__)
            raise ProviderUnreachableError("could not reach the provider's token endpoint") from e
        try:
            doc = r.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ProviderUnreachableError(
                f"the provider's token endpoint answered {r.status_code} without JSON"
            )
        if r.status_code != 200 or "error" in doc:
            # RFC 6749 5.2: the error code is meant to be shown; the description is
            # the provider's own text and carries no secret.
            error = str(doc.get("error", r.status_code))
            desc = str(doc.get("error_description") or "")[:300]
            raise OidcError(
                f"the provider refused the authorization code: {error}"
                + (f" ({desc})" if desc else "")
            )
        return doc

    async def validate_id_token(
        self, token: str, *, nonce: str | None = None, access_token: str | None = None
    ) -> dict[str, Any]:
        """The claims of ``token`` once its signature (JWKS), ``iss``, ``aud``
        (== clientID), ``exp``, ``iat`` and, when given, ``nonce`` and ``at_hash``
        check out; :class:`OidcError` says which did not."""
        if not _looks_like_jwt(token):
            raise OidcError("the ID token is not a signed JWT")
        meta = await self.metadata()
        keys = await self.keys()
        kid = _kid(token)
        if kid is not None and not any(k.kid == kid for k in keys.keys):
            keys = await self.keys(refresh=True)
        try:
            decoded = jwt.decode(token, keys, algorithms=self._algorithms(meta))
        except JoseError as e:
            raise OidcError(f"the ID token's signature does not verify ({e.error})") from e
        except ValueError as e:
            raise OidcError("the ID token cannot be decoded") from e
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": self.config.issuer},
                "aud": {"essential": True, "value": self.config.client_id},
            },
            params={
                "nonce": nonce,
                "client_id": self.config.client_id,
                "access_token": access_token,
            },
        )
        try:
            claims.validate(leeway=LEEWAY)
        except (ValueError, TypeError) as e:  # a claim of a type the checks did not expect
            raise OidcError("the ID token's claims cannot be read") from e
        except JoseError as e:
            raise OidcError(f"the ID token is not valid here ({e.description or e.error})") from e
        return dict(claims)

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The caller an ID token names: ``email`` (else ``sub``) and the groups
        claim (a list of strings, or one string, as Argo CD accepts both)."""
        # The email only when the provider vouches for it (``email_verified``), as
        # an unverified address is whatever the user typed at the provider.
        email = claims.get("email") if claims.get("email_verified") is True else None
        name = email or claims.get("sub")
        if not isinstance(name, str) or not name:
            raise OidcError("the ID token names no user (no verified email and no sub)")
        if name.startswith("role:"):
            raise OidcError(f"the ID token names {name}, a role's name: refused")
        if self._reserved(name):
            # A provider whose sub is "admin" must not become the local admin
            # (and inherit ``g, admin, role:admin``): names of local accounts are
            # theirs alone.
            raise OidcError(f"the ID token names {name}, which is a local account: refused")
        raw = claims.get(self.config.groups_claim)
        if isinstance(raw, str):
            groups: tuple[str, ...] = (raw,)
        elif isinstance(raw, list):
            groups = tuple(g for g in raw if isinstance(g, str) and g)
        else:
            groups = ()
        # A group named like a role or a local account would inherit its rules
        # (``g, admin, role:admin``): such groups are dropped.
        groups = tuple(g for g in groups if not g.startswith("role:") and not self._reserved(g))
        return Principal(name=name, groups=groups, via="oidc")

    async def verify_bearer(self, token: str) -> Principal | None:
        """The principal of an OIDC ID token sent as ``Authorization: Bearer``
        (Argo CD takes those too); None for anything that is not a valid ID token
        of this provider for this client: wrong signature, audience, issuer,
        expired. Never raises."""
        if not _looks_like_jwt(token):
            return None
        try:
            return self.principal(await self.validate_id_token(token))
        except OidcError as e:
            log.info("event=oidc_bearer_refused reason=%s", _logsafe(str(e)))
            return None


def _logsafe(text: str) -> str:
    return text.replace(" ", "_").replace("\n", "_")[:200]


def provider_from_configmap(
    configmap: JSONDict | None,
    *,
    url: str,
    secret: Callable[[str], JSONDict | None],
    reserved: Callable[[str], bool] = lambda name: False,
) -> OidcProvider | None:
    """The provider ``gitmoor-cm`` configures, or None (no ``oidc.config``).
    Raises :class:`UserInputError` for a configuration that cannot work."""
    text = oidc_config_text(configmap)
    if not text:
        return None
    config = parse_oidc_config(text)
    provider = OidcProvider(
        config,
        redirect_uri=f"{url.rstrip('/')}{CALLBACK_PATH}",
        secret=secret,
        reserved=reserved,
    )
    provider.source = text
    return provider


def reload_provider(
    current: OidcProvider | None,
    configmap: JSONDict | None,
    *,
    url: str,
    secret: Callable[[str], JSONDict | None],
    reserved: Callable[[str], bool] = lambda name: False,
) -> OidcProvider | None:
    """The provider after a change of ``gitmoor-cm``. Unchanged ``oidc.config``
    (the change was an account edit) keeps ``current`` and its discovery and JWKS
    caches; no ``oidc.config`` is None; a configuration that cannot work keeps
    ``current`` in force, as a bad RBAC policy keeps the last good one, and the
    log says why."""
    text = oidc_config_text(configmap)
    if current is not None and text == current.source:
        return current
    if not text:
        if current is not None:
            log.info("event=oidc_unconfigured")
        return None
    try:
        provider = provider_from_configmap(configmap, url=url, secret=secret, reserved=reserved)
    except UserInputError as e:
        log.error("event=oidc_invalid key=%s error=%s", OIDC_CONFIG_KEY, _logsafe(str(e)))
        return current
    assert provider is not None
    log.info(
        "event=oidc_configured name=%s issuer=%s client_id=%s",
        _logsafe(provider.name),
        provider.config.issuer,
        provider.config.client_id,
    )
    return provider


# ---------------------------------------------------------------------- routes

router = APIRouter(tags=["session"])


class OidcRefusal(BaseModel):
    detail: str


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _refuse(request: Request, status: int, message: str) -> Response:
    """A readable refusal: a small page for a browser, JSON for anything else."""
    if _wants_html(request):
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<title>Login failed - gitmoor</title></head><body><main>"
            f"<h1>Login failed</h1><p>{html.escape(message)}</p>"
            '<p><a href="/login">Back to the login page</a></p></main></body></html>'
        )
        return HTMLResponse(page, status_code=status)
    return JSONResponse({"detail": message}, status_code=status)


def _state_signer(key: bytes) -> URLSafeTimedSerializer:
    # Same key as the session cookie (``server.secretkey``), another salt, so
    # neither cookie can stand in for the other.
    return URLSafeTimedSerializer(key, salt="gitmoor.oidc-state")


def _local_path(value: str | None) -> str:
    """Where to land after login: a path on this server only (an open redirect
    to another site would make our login page a phishing relay)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


#: a browser (``Accept: text/html``) gets the same sentence as a small page
_PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": OidcRefusal,
        "description": "the login was refused; the detail says why",
        **_PAGE,
    },
    404: {"model": OidcRefusal, "description": "OIDC is not configured", **_PAGE},
}


@router.get(
    LOGIN_PATH,
    summary="Start an OIDC login",
    description=(
        "Redirects (303) to the OIDC provider configured in `oidc.config` of `gitmoor-cm`, "
        "with state, nonce and a PKCE S256 code challenge; the state travels in the signed, "
        "HttpOnly `gitmoor.oidc` cookie for five minutes. `return_url` (a path on this "
        "server) is where the browser lands after the login."
    ),
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "to the provider's authorization endpoint"},
        404: _REFUSALS[404],
        502: {
            "model": OidcRefusal,
            "description": "the OIDC provider could not be reached",
            **_PAGE,
        },
    },
)
async def oidc_login(request: Request, return_url: str | None = None) -> Response:
    state = server_state(request)
    provider = state.oidc
    if provider is None:
        return _refuse(request, 404, "OIDC login is not configured on this server")
    flow = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        # 64 characters of [A-Za-z0-9_-]: within RFC 7636's 43-128 unreserved characters
        "verifier": secrets.token_urlsafe(48),
        "return": _local_path(return_url),
    }
    try:
        target = await provider.authorization_url(
            state=flow["state"], nonce=flow["nonce"], verifier=flow["verifier"]
        )
    except OidcError as e:
        log.warning("event=oidc_login_failed stage=discovery reason=%s", _logsafe(str(e)))
        return _refuse(request, 502, str(e))
    response = RedirectResponse(target, status_code=303)
    signed = _state_signer(await state.accounts.server_key()).dumps(flow)
    response.set_cookie(
        STATE_COOKIE,
        str(signed),
        max_age=STATE_TTL,
        path=CALLBACK_PATH,
        httponly=True,
        # Lax: the callback is a top-level GET navigation from the provider's site.
        samesite="lax",
        secure=state.secure_cookies,
    )
    return response


async def _finish(
    state: ServerState,
    provider: OidcProvider,
    *,
    cookie: str | None,
    sent_state: str | None,
    code: str | None,
) -> tuple[Principal, str]:
    """Check the callback; who logged in and where they go next, or
    :class:`OidcError` saying why not."""
    if not cookie:
        raise OidcError("no login in progress (the state cookie is missing); start again")
    try:
        flow = _state_signer(await state.accounts.server_key()).loads(cookie, max_age=STATE_TTL)
    except BadSignature as e:
        raise OidcError("the login state expired or was tampered with; start again") from e
    if not isinstance(flow, dict) or not all(
        isinstance(flow.get(k), str) for k in ("state", "nonce", "verifier", "return")
    ):
        raise OidcError("the login state cannot be read; start again")
    if not hmac.compare_digest((sent_state or "").encode(), flow["state"].encode()):
        raise OidcError("the state parameter does not match this browser's login; start again")
    if not code:
        raise OidcError("the provider sent no authorization code")
    tokens = await provider.exchange(code, flow["verifier"])
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise OidcError("the provider returned no ID token (is the openid scope requested?)")
    access = tokens.get("access_token")
    claims = await provider.validate_id_token(
        id_token,
        nonce=flow["nonce"],
        access_token=access if isinstance(access, str) else None,
    )
    return provider.principal(claims), flow["return"]


@router.get(
    CALLBACK_PATH,
    summary="Finish an OIDC login",
    description=(
        "Where the provider sends the browser back. Checks `state` against the login "
        "cookie, exchanges `code` with the PKCE verifier, validates the ID token (signature, "
        "issuer, audience, expiry, nonce), opens a session (the same cookie as a password "
        "login) for the token's `email` (or `sub`) with its groups claim as RBAC groups, "
        "and redirects (303) to `/`. Any failure is a 401 with a readable reason."
    ),
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"description": "logged in; to the application list"}, **_REFUSALS},
)
async def oidc_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    srv = server_state(request)
    address = client_address(request)
    provider = srv.oidc
    if provider is None:
        return _refuse(request, 404, "OIDC login is not configured on this server")
    try:
        if error is not None:
            # RFC 6749 4.1.2.1: the user declined, or the provider refused the request.
            desc = (error_description or "")[:300]
            raise OidcError(
                f"the provider refused the login: {error}" + (f" ({desc})" if desc else "")
            )
        who, landing = await _finish(
            srv, provider, cookie=request.cookies.get(STATE_COOKIE), sent_state=state, code=code
        )
    except (OidcError, UserInputError) as e:
        log.warning("event=oidc_login_failed address=%s reason=%s", address, _logsafe(str(e)))
        await srv.audit.record(
            who="-",
            action="login",
            target=None,
            result="failure",
            address=address,
            message=f"oidc: {e}",
        )
        response = _refuse(request, 401, str(e))
        response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
        return response
    _, token = srv.sessions.create(who)
    response = RedirectResponse(landing, status_code=303)
    set_session_cookie(response, token, secure=srv.secure_cookies)
    response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    log.info("event=oidc_login user=%s groups=%d address=%s", who.name, len(who.groups), address)
    await srv.audit.record(
        who=who.name, action="login", target=None, result="success", address=address, message="oidc"
    )
    return response


__all__ = [
    "OidcConfig",
    "OidcError",
    "OidcProvider",
    "parse_oidc_config",
    "provider_from_configmap",
    "reload_provider",
    "resolve_secret",
    "router",
]
