"""``oidc.config`` parsing, the ``$key`` client secret, and rebuilding on change."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from gitmoor.model import UserInputError
from gitmoor.server.auth.oidc import (
    DEFAULT_SCOPES,
    OidcConfig,
    OidcError,
    OidcProvider,
    oidc_config_text,
    parse_oidc_config,
    reload_provider,
    resolve_secret,
)

ARGO_STYLE = """\
name: Okta
issuer: https://example.okta.com/
clientID: aaabbbccc
clientSecret: $oidc.okta.clientSecret
requestedScopes: ["openid", "profile", "email", "groups"]
requestedIDTokenClaims: {"groups": {"essential": true}}
groupsClaim: roles
logoutURL: https://example.okta.com/logout
"""

SECRET_VALUE = "s3cr3t-value-never-shown"


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _lookup(secrets: dict[str, dict[str, str]]) -> Any:
    def get(name: str) -> dict[str, Any] | None:
        return _secret(name, secrets[name]) if name in secrets else None

    return get


def _cm(text: str | None) -> dict[str, Any]:
    return {
        "metadata": {"name": "gitmoor-cm"},
        "data": {} if text is None else {"oidc.config": text},
    }


def test_argo_cd_config_is_read() -> None:
    config = parse_oidc_config(ARGO_STYLE)
    assert config == OidcConfig(
        name="Okta",
        issuer="https://example.okta.com",  # trailing slash dropped: iss is compared exactly
        client_id="aaabbbccc",
        client_secret="$oidc.okta.clientSecret",
        requested_scopes=("openid", "profile", "email", "groups"),
        groups_claim="roles",
    )


def test_defaults() -> None:
    config = parse_oidc_config("issuer: https://idp.example\nclientID: x\n")
    assert config.name == "SSO"
    assert config.requested_scopes == DEFAULT_SCOPES == ("openid", "profile", "email", "groups")
    assert config.groups_claim == "groups"
    assert config.client_secret == ""


def test_openid_scope_is_always_requested() -> None:
    config = parse_oidc_config("issuer: https://i\nclientID: x\nrequestedScopes: [email, groups]\n")
    assert config.requested_scopes == ("openid", "email", "groups")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("clientID: x\n", "issuer"),
        ("issuer: https://i\n", "clientID"),
        ("issuer: ftp://i\nclientID: x\n", "issuer"),
        ("issuer: https://i\nclientID: 12\n", "clientID"),
        ("issuer: https://i\nclientID: x\nrequestedScopes: openid\n", "requestedScopes"),
        ("issuer: https://i\nclientID: x\nrequestedScopes: [1, 2]\n", "requestedScopes"),
        ("- a\n- b\n", "mapping"),
        ("issuer: [unclosed\n", "YAML"),
    ],
)
def test_bad_config_is_a_user_error_that_names_the_field(text: str, names: str) -> None:
    with pytest.raises(UserInputError, match=names):
        parse_oidc_config(text)


def test_the_secret_is_not_in_the_repr() -> None:
    config = parse_oidc_config(f"issuer: https://i\nclientID: x\nclientSecret: {SECRET_VALUE}\n")
    assert SECRET_VALUE not in repr(config)


def test_client_secret_references() -> None:
    lookup = _lookup(
        {
            "gitmoor-secret": {"oidc.clientSecret": SECRET_VALUE},
            "sso": {"client-secret": "from-another-secret"},
        }
    )
    assert resolve_secret("plain-value", lookup) == "plain-value"
    assert resolve_secret("$oidc.clientSecret", lookup) == SECRET_VALUE
    assert resolve_secret("$sso:client-secret", lookup) == "from-another-secret"


@pytest.mark.parametrize("ref", ["$missing.key", "$sso:nope", "$absent-secret:key", "$", "$:k"])
def test_a_missing_secret_key_is_named_without_values(ref: str) -> None:
    lookup = _lookup({"gitmoor-secret": {"oidc.clientSecret": SECRET_VALUE}, "sso": {"k": "v"}})
    with pytest.raises(UserInputError) as e:
        resolve_secret(ref, lookup)
    assert SECRET_VALUE not in str(e.value)


def test_config_text_of_a_configmap() -> None:
    assert oidc_config_text(None) == ""
    assert oidc_config_text(_cm(None)) == ""
    assert oidc_config_text(_cm("  issuer: x\n")) == "issuer: x"


def test_reload_keeps_the_provider_while_oidc_config_is_unchanged() -> None:
    def secret(name: str) -> dict[str, Any] | None:
        return None

    url = "https://gitmoor.example"
    text = "name: A\nissuer: https://idp.example\nclientID: gitmoor\n"
    first = reload_provider(None, _cm(text), url=url, secret=secret)
    assert first is not None
    assert first.name == "A"
    assert first.redirect_uri == "https://gitmoor.example/auth/callback"
    # An account edit rewrites gitmoor-cm without touching oidc.config: same object, same caches.
    assert reload_provider(first, _cm(text), url=url, secret=secret) is first
    changed = reload_provider(
        first, _cm(text.replace("name: A", "name: B")), url=url, secret=secret
    )
    assert changed is not None and changed is not first and changed.name == "B"
    # A broken edit keeps the last good provider (as a broken RBAC policy keeps the last good one).
    assert reload_provider(changed, _cm("issuer: [oops"), url=url, secret=secret) is changed
    assert reload_provider(changed, _cm(None), url=url, secret=secret) is None


def _provider(**claims_config: str) -> OidcProvider:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    config = OidcConfig("T", "https://idp.example", "gitmoor", "", **claims_config)  # type: ignore[arg-type]
    return OidcProvider(
        config,
        redirect_uri="https://g/auth/callback",
        secret=lambda name: None,
        transport=httpx.MockTransport(refuse),
    )


def test_principal_from_claims() -> None:
    p = _provider()
    who = p.principal(
        {
            "sub": "u1",
            "email": "a@example.com",
            "email_verified": True,
            "groups": ["g1", 7, "", "g2"],
        }
    )
    assert (who.name, who.groups, who.via) == ("a@example.com", ("g1", "g2"), "oidc")
    # An email the provider does not vouch for is not a name: the subject is.
    assert p.principal({"sub": "u1", "email": "a@example.com"}).name == "u1"
    assert (
        p.principal({"sub": "u1", "email": "a@example.com", "email_verified": "true"}).name == "u1"
    )
    # Names and groups that would inherit a role's rules are refused or dropped.
    with pytest.raises(OidcError, match="role"):
        p.principal({"sub": "role:admin"})
    assert p.principal({"sub": "u1", "groups": ["role:admin", "devs"]}).groups == ("devs",)
    assert p.principal({"sub": "u1", "groups": "solo"}).groups == ("solo",)
    assert p.principal({"sub": "u1"}).name == "u1"
    assert _provider(groups_claim="roles").principal({"sub": "u", "roles": ["r"]}).groups == ("r",)
    with pytest.raises(OidcError):
        p.principal({"groups": ["g"]})


async def test_a_bearer_that_is_no_jwt_costs_no_request() -> None:
    p = _provider()
    for token in ("", "abc", "a.b", "a..c", "gitmoor-api-token-123"):
        assert await p.verify_bearer(token) is None


def test_an_oidc_user_cannot_take_a_local_account_name() -> None:
    config = OidcConfig("T", "https://idp.example", "gitmoor", "")
    p = OidcProvider(
        config,
        redirect_uri="https://g/auth/callback",
        secret=lambda name: None,
        reserved=lambda name: name == "admin",
    )
    with pytest.raises(OidcError, match="local account"):
        p.principal({"sub": "admin", "groups": ["g"]})
    assert (
        p.principal({"sub": "admin", "email": "admin@example.com", "email_verified": True}).name
        == "admin@example.com"
    )
    # A group named like a local account would inherit its rules: dropped.
    assert p.principal({"sub": "u", "groups": ["admin", "devs"]}).groups == ("devs",)
