"""A real OpenID Connect provider for the tests, built from authlib's server side.

authlib's ``AuthorizationServer`` with the authorization-code grant, its PKCE
extension (``CodeChallenge``, required and S256 only here: a code is only ever
redeemed with the verifier whose hash the authorization request carried) and
its OpenID Connect extension (``OpenIDCode``), signing RS256 ID tokens with a
key generated at start. It serves discovery, JWKS, ``/authorize`` (a small login
form: the users and their groups are given at start), ``/token`` (client secret
checked, Basic or POST) and ``/userinfo``, on loopback, as its own process::

    python -m support.oidc_provider --port 5556 \\
        --client gitmoor:s3cret:http://127.0.0.1:8080/auth/callback \\
        --user alice:pw:alice@example.com:team-a,devs

Test-only extras: ``--key-file`` writes the private JWK (so a test can mint
tokens with the provider's own key: expired, another issuer), and
``POST /test/rotate`` replaces the signing key (new ``kid``), as a provider that
rotates its keys would. :func:`start_provider` launches it and waits until
discovery answers.

The HTTP side is the standard library's ``ThreadingHTTPServer``; everything
OAuth (request validation, client authentication, code and PKCE checks, ID token
claims and signature) is authlib's.
"""

from __future__ import annotations

import argparse
import hmac
import html
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6749.resource_protector import ResourceProtector
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc.jwk import KeySet, RSAKey

SCOPES = ["openid", "profile", "email", "groups"]
CODE_TTL = 60.0
ID_TOKEN_TTL = 3600


# ---------------------------------------------------------------------- models


@dataclass
class User:
    name: str
    password: str
    email: str
    groups: list[str]


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        asked = (scope or "").split()
        return " ".join(s for s in asked if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))
    expires: float = field(default_factory=lambda: time.time() + CODE_TTL)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return ["pwd"]


@dataclass
class AccessToken:
    value: str
    client: Client
    user: User
    scope: str
    expires: float

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int(self.expires - time.time())

    def is_expired(self) -> bool:
        return time.time() >= self.expires

    def is_revoked(self) -> bool:
        return False

    def get_user(self) -> User:
        return self.user

    def get_client(self) -> Client:
        return self.client


@dataclass
class Store:
    issuer: str
    clients: dict[str, Client]
    users: dict[str, User]
    key: RSAKey
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


# ---------------------------------------------------------------------- requests


class Payload(OAuth2Payload):
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._datalist = values

    @property
    def data(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._datalist.items() if v}

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class Request(OAuth2Request):
    """One HTTP request as authlib sees it: query and form merged in the payload
    (an authorization request may come as either), headers case-insensitive."""

    def __init__(self, method: str, uri: str, headers: Any, query: str, body: str) -> None:
        super().__init__(method, uri, headers=headers)
        self._args = parse_qs(query, keep_blank_values=True)
        self._form = parse_qs(body, keep_blank_values=True)
        merged: dict[str, list[str]] = defaultdict(list)
        for source in (self._args, self._form):
            for k, v in source.items():
                merged[k].extend(v)
        self.payload = Payload(dict(merged))

    @property
    def args(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._args.items()}

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._form.items()}


# ---------------------------------------------------------------------- authlib pieces


class S256Only(CodeChallenge):
    """PKCE required for every client, S256 only: no code is issued without a
    challenge, so none is redeemed without the matching verifier."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE: code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


def make_server(store: Store) -> AuthorizationServer:
    class Server(AuthorizationServer):
        def query_client(self, client_id: str) -> Client | None:
            return store.clients.get(client_id)

        def save_token(self, token: dict[str, Any], request: Request) -> None:
            with store.lock:
                store.tokens[token["access_token"]] = AccessToken(
                    token["access_token"],
                    request.client,
                    request.user,
                    token.get("scope", ""),
                    time.time() + int(token.get("expires_in", 3600)),
                )

        def create_oauth2_request(self, request: Request) -> Request:
            return request

        def handle_response(
            self, status: int, body: Any, headers: list[tuple[str, str]]
        ) -> tuple[int, bytes, list[tuple[str, str]]]:
            data = json.dumps(body) if isinstance(body, dict) else str(body or "")
            return status, data.encode(), list(headers)

        def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
            pass

    class CodeGrant(AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
            "client_secret_basic",
            "client_secret_post",
        ]

        def save_authorization_code(self, code: str, request: Request) -> None:
            data = request.payload.data
            with store.lock:
                if data.get("nonce"):
                    store.nonces.add(data["nonce"])
                store.codes[code] = Code(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=request.payload.redirect_uri or "",
                    scope=request.scope,
                    user=request.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            with store.lock:
                item = store.codes.get(code)
            if item is None or item.client_id != client.client_id or item.expires < time.time():
                return None
            return item

        def delete_authorization_code(self, authorization_code: Code) -> None:
            with store.lock:
                store.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> User:
            return authorization_code.user

    class OpenID(OpenIDCode):
        def exists_nonce(self, nonce: str, request: Request) -> bool:
            # A nonce is spent once a code was issued for it (authlib's own
            # example looks it up among the issued codes the same way).
            with store.lock:
                return nonce in store.nonces

        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return store.key

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            now = int(time.time())
            return {"iss": store.issuer, "aud": [client.client_id], "exp": now + ID_TOKEN_TTL}

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": str(store.key.kid)}

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            return user_info(user, scope)

    server = Server(scopes_supported=SCOPES)
    server.register_token_generator("default", BearerTokenGenerator(lambda **_: generate_token(42)))
    server.register_grant(CodeGrant, [S256Only(required=True), OpenID(require_nonce=True)])
    return server


def user_info(user: User, scope: str) -> UserInfo:
    scopes = scope.split()
    info = UserInfo(sub=user.name)
    if "profile" in scopes:
        info["name"] = user.name
        info["preferred_username"] = user.name
    if "email" in scopes:
        info["email"] = user.email
        info["email_verified"] = True
    if "groups" in scopes:
        info["groups"] = list(user.groups)
    return info


def protector(store: Store) -> ResourceProtector:
    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string: str) -> AccessToken | None:
            with store.lock:
                return store.tokens.get(token_string)

    rp = ResourceProtector()
    rp.register_token_validator(Validator())
    return rp


def discovery(issuer: str) -> dict[str, Any]:
    meta = OpenIDProviderMetadata(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/authorize",
        token_endpoint=f"{issuer}/token",
        userinfo_endpoint=f"{issuer}/userinfo",
        jwks_uri=f"{issuer}/jwks",
        response_types_supported=["code"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["RS256"],
        scopes_supported=SCOPES,
        grant_types_supported=["authorization_code"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported=["S256"],
        claims_supported=["sub", "iss", "aud", "exp", "iat", "nonce", "email", "name", "groups"],
    )
    meta.validate()  # authlib checks the document is what OIDC Discovery 1.0 requires
    return dict(meta)


# ---------------------------------------------------------------------- HTTP


def _form_page(params: dict[str, str], message: str = "") -> bytes:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k not in ("username", "password")
    )
    note = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Test IdP login</title>"
        f"</head><body><main><h1>Test IdP</h1>{note}"
        f'<form method="post" action="/authorize">{hidden}'
        '<label>Username <input name="username" autocomplete="username"></label>'
        '<label>Password <input name="password" type="password"></label>'
        '<button type="submit">Sign in</button></form></main></body></html>'
    ).encode()


def handler(store: Store) -> type[BaseHTTPRequestHandler]:
    server = make_server(store)
    rp = protector(store)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            names = {k.lower() for k, _ in headers}
            for k, v in headers:
                self.send_header(k, v)
            if "content-type" not in names:
                self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, doc: Any) -> None:
            self._send(status, json.dumps(doc).encode(), [])

        def _request(self) -> Request:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            parts = urlsplit(self.path)
            return Request(
                self.command, f"{store.issuer}{self.path}", self.headers, parts.query, body
            )

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/.well-known/openid-configuration":
                self._json(200, discovery(store.issuer))
            elif path == "/jwks":
                self._json(200, KeySet([store.key]).as_dict())
            elif path == "/authorize":
                self._authorize(self._request())
            elif path == "/userinfo":
                self._userinfo(self._request())
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if path == "/authorize":
                self._authorize(self._request())
            elif path == "/token":
                status, body, headers = server.create_token_response(self._request())
                if status != 200:
                    sys.stderr.write(f"event=token_refused status={status} body={body!r}\n")
                self._send(status, body, headers)
            elif path == "/userinfo":
                self._userinfo(self._request())
            elif path == "/test/rotate":
                store.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)})
                self._json(200, {"kid": store.key.kid})
            else:
                self._json(404, {"error": "not_found"})

        def _authorize(self, request: Request) -> None:
            try:
                grant = server.get_consent_grant(request)
            except OAuth2Error as e:
                # authlib redirects the error back only to a redirect_uri it has
                # checked against the client (RFC 6749 4.1.2.1); else a 400 here.
                self._send(*server.handle_error_response(request, e))
                return
            form = request.form
            params = request.payload.data
            if self.command == "GET" or "username" not in form:
                self._send(200, _form_page(params), [("Content-Type", "text/html")])
                return
            user = store.users.get(form.get("username", ""))
            if user is None or not hmac.compare_digest(
                form.get("password", "").encode(), user.password.encode()
            ):
                page = _form_page(params, "Wrong username or password.")
                self._send(401, page, [("Content-Type", "text/html")])
                return
            status, body, headers = server.create_authorization_response(
                request, grant_user=user, grant=grant
            )
            self._send(status, body, headers)

        def _userinfo(self, request: Request) -> None:
            try:
                token = rp.validate_request(["openid"], request)
            except OAuth2Error as e:
                self._json(401, {"error": e.error})
                return
            self._json(200, dict(user_info(token.user, token.scope)))

    return Handler


# ---------------------------------------------------------------------- process


def _parse_client(text: str) -> Client:
    client_id, secret, uris = text.split(":", 2)
    return Client(client_id, secret, uris.split(","))


def _parse_user(text: str) -> User:
    name, password, email, groups = [*text.split(":", 3), ""][:4]
    return User(name, password, email, [g for g in groups.split(",") if g])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", help="default: http://127.0.0.1:PORT")
    parser.add_argument(
        "--client", action="append", default=[], help="ID:SECRET:REDIRECT_URI[,URI...]"
    )
    parser.add_argument("--user", action="append", default=[], help="NAME:PASSWORD:EMAIL:G1,G2")
    parser.add_argument("--key-file", type=Path, help="write the private signing JWK here")
    args = parser.parse_args(argv)
    issuer = args.issuer or f"http://127.0.0.1:{args.port}"
    clients = [_parse_client(c) for c in args.client]
    users = [_parse_user(u) for u in args.user]
    key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)})
    if args.key_file:
        args.key_file.write_text(json.dumps(key.as_dict(private=True)))
    store = Store(issuer, {c.client_id: c for c in clients}, {u.name: u for u in users}, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), handler(store))
    sys.stdout.write(f"listening {issuer}\n")
    sys.stdout.flush()
    httpd.serve_forever()


@dataclass
class Provider:
    """A provider process started by :func:`launch`."""

    issuer: str
    process: subprocess.Popen[bytes]
    key_file: Path
    log_file: Path

    def private_key(self) -> RSAKey:
        """The signing key the provider started with (a test mints tokens with it)."""
        key = RSAKey.import_key(json.loads(self.key_file.read_text()))
        assert isinstance(key, RSAKey)
        return key

    async def answers(self) -> bool:
        """Is discovery served yet? Raises, with the provider's output, if it died."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the OIDC provider exited ({self.process.returncode}): "
                + self.log_file.read_text()
            )
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                r = await c.get(f"{self.issuer}/.well-known/openid-configuration")
        except httpx.TransportError:
            return False
        return r.status_code == 200

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def launch(tmp: Path, *, clients: list[str], users: list[str]) -> Provider:
    """Start the provider as a subprocess on a free loopback port. Wait for
    :meth:`Provider.answers` before use, and :meth:`Provider.stop` it after."""
    port = free_port()
    key_file = tmp / "oidc-key.json"
    log_file = tmp / "oidc-provider.log"
    cmd = [sys.executable, "-m", "support.oidc_provider", "--port", str(port)]
    cmd += ["--key-file", str(key_file)]
    for c in clients:
        cmd += ["--client", c]
    for u in users:
        cmd += ["--user", u]
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=Path(__file__).resolve().parents[1], stdout=out, stderr=subprocess.STDOUT
        )
    return Provider(f"http://127.0.0.1:{port}", proc, key_file, log_file)


if __name__ == "__main__":
    main()
