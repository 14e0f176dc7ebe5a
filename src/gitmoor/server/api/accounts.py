"""Local accounts through the API (Argo CD's ``AccountService``): list, API tokens,
password changes.

Who may do what, as Argo CD decides it: a caller manages their own local
account (list its tokens, issue and revoke them, change its password) with no
RBAC rule; another account needs ``accounts, get, NAME`` to be read and
``accounts, update, NAME`` to be changed. "Own" means a local account the
caller logged into or holds a token of, never an OIDC user who happens to have
the same name.

A token is in the response of the call that issues it, once; nothing returns
it (or its hash) again. Changing a password ends every session of that account.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.application import parse_duration
from gitmoor.server.api.session import errors
from gitmoor.server.deps import Caller, State, allowed, client_address
from gitmoor.settings.accounts import SETTINGS_SECRET, WrongPasswordError

if TYPE_CHECKING:
    from gitmoor.server.auth.principal import Principal
    from gitmoor.server.state import ServerState
    from gitmoor.settings.accounts import Account, TokenEntry

router = APIRouter(tags=["accounts"])

_401 = "no or bad credentials"
_403 = "the RBAC policy does not allow this, or a cookie request lacks its CSRF token"

Name = Annotated[str, Path(description="the account's name", max_length=63)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenOut(Model):
    id: str
    issuedAt: str = Field(description="RFC 3339")
    expiresAt: str | None = Field(description="RFC 3339; null for a token that never expires")
    expired: bool


class AccountOut(Model):
    name: str
    enabled: bool
    capabilities: list[str] = Field(description="login, apiKey")
    passwordMtime: str = Field(description="when the password last changed ('' if never set)")
    tokens: list[TokenOut]


class TokenRequest(Model):
    expiresIn: float | str | None = Field(
        default=None,
        description="lifetime in seconds or as a duration (`24h`, `90m`); omit for no expiry",
    )
    id: str | None = Field(
        default=None,
        max_length=63,
        description="the token's id (letters, digits, '-', '_'); generated when omitted",
    )


class TokenCreated(Model):
    id: str
    token: str = Field(description="shown once: only its hash is kept")


class PasswordRequest(Model):
    currentPassword: str = Field(max_length=1024, description="the caller's own current password")
    newPassword: str = Field(max_length=1024, description="at least 8 characters")


class Message(Model):
    message: str


def _time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _token_out(t: TokenEntry, now: float) -> TokenOut:
    return TokenOut(
        id=t.id,
        issuedAt=_time(t.iat),
        expiresAt=_time(t.exp) if t.exp else None,
        expired=t.expired(now),
    )


def _account_out(a: Account) -> AccountOut:
    now = dt.datetime.now(dt.UTC).timestamp()
    return AccountOut(
        name=a.name,
        enabled=a.enabled,
        capabilities=list(a.capabilities),
        passwordMtime=a.password_mtime,
        tokens=[_token_out(t, now) for t in a.tokens],
    )


def _own(who: Principal, name: str) -> bool:
    return who.via != "oidc" and who.name == name


def _may(state: ServerState, who: Principal, action: str, name: str) -> bool:
    return _own(who, name) or allowed(state, who, "accounts", action, name)


def _account(state: ServerState, who: Principal, action: str, name: str) -> Account:
    """The account ``name`` if the caller may ``action`` it: 403 otherwise, then 404."""
    if not _may(state, who, action, name):
        raise HTTPException(403, f"permission denied: accounts, {action}, {name}")
    account = state.accounts.get(name)
    if account is None:
        raise HTTPException(404, f"account {name} not found")
    return account


def _secret_ref(state: ServerState) -> ObjectRef:
    return ObjectRef("", "v1", "Secret", state.namespace, SETTINGS_SECRET)


@router.get(
    "/accounts",
    response_model=list[AccountOut],
    summary="List local accounts",
    description="The accounts the caller may get (`accounts, get, NAME`), and their own.",
    responses=errors(e401=_401),
)
async def list_accounts(who: Caller, state: State) -> list[AccountOut]:
    return [
        _account_out(a) for a in state.accounts.list_accounts() if _may(state, who, "get", a.name)
    ]


@router.get(
    "/accounts/{name}",
    response_model=AccountOut,
    summary="Get one local account",
    responses=errors(e401=_401, e403=_403, e404="no such account"),
)
async def get_account(name: Name, who: Caller, state: State) -> AccountOut:
    return _account_out(_account(state, who, "get", name))


@router.get(
    "/accounts/{name}/tokens",
    response_model=list[TokenOut],
    summary="List an account's API tokens (ids and times, never the tokens)",
    responses=errors(e401=_401, e403=_403, e404="no such account"),
)
async def list_tokens(name: Name, who: Caller, state: State) -> list[TokenOut]:
    now = dt.datetime.now(dt.UTC).timestamp()
    return [_token_out(t, now) for t in _account(state, who, "get", name).tokens]


@router.post(
    "/accounts/{name}/tokens",
    response_model=TokenCreated,
    summary="Issue an API token",
    description=(
        "The account needs the `apiKey` capability. The token is in this response only; "
        "send it as `Authorization: Bearer TOKEN`."
    ),
    responses=errors(
        e400="no apiKey capability, a bad lifetime or a taken id",
        e401=_401,
        e403=_403,
        e404="no such account",
    ),
)
async def generate_token(
    name: Name, body: TokenRequest, who: Caller, state: State, request: Request
) -> TokenCreated:
    _account(state, who, "update", name)
    if who.via == "token" and not allowed(state, who, "accounts", "update", name):
        # A leaked API token must not mint itself successors that never expire: a
        # new token needs a signed-in session (or the accounts/update rule).
        raise HTTPException(
            403, "an API token cannot create tokens: sign in with the account's password"
        )
    expires_in = None
    if body.expiresIn is not None:
        expires_in = parse_duration(body.expiresIn, "expiresIn")
        if expires_in <= 0 or not math.isfinite(expires_in) or expires_in > 100 * 365 * 86400:
            raise UserInputError("expiresIn must be a positive duration under 100 years")
    tid, token = await state.accounts.generate_token(name, expires_in, body.id)
    await state.audit.record(
        who=who.name,
        action="generate-token",
        target=_secret_ref(state),
        result="success",
        address=client_address(request),
        message=f"account {name} token {tid}",
    )
    return TokenCreated(id=tid, token=token)


@router.delete(
    "/accounts/{name}/tokens/{token_id}",
    response_model=Message,
    summary="Revoke an API token",
    description="The token stops working when this call returns.",
    responses=errors(e401=_401, e403=_403, e404="no such token"),
)
async def revoke_token(
    name: Name,
    token_id: Annotated[str, Path(max_length=63)],
    who: Caller,
    state: State,
    request: Request,
) -> Message:
    _account(state, who, "update", name)
    if not await state.accounts.revoke_token(name, token_id):
        raise HTTPException(404, f"account {name} has no token {token_id}")
    await state.audit.record(
        who=who.name,
        action="revoke-token",
        target=_secret_ref(state),
        result="success",
        address=client_address(request),
        message=f"account {name} token {token_id}",
    )
    return Message(message=f"token {token_id} revoked")


@router.put(
    "/accounts/{name}/password",
    response_model=Message,
    summary="Change an account's password",
    description=(
        "`currentPassword` is the caller's own password, also when an admin changes "
        "another account's (as Argo CD asks). Every session of the account ends. Wrong "
        "current passwords count as failed logins (429 with `Retry-After` when limited)."
    ),
    responses=errors(
        e400="the new password is too short or too long",
        e401=_401,
        e403="not allowed, or the current password is wrong",
        e404="no such account",
        e429="too many wrong passwords; see Retry-After",
    ),
)
async def update_password(
    name: Name, body: PasswordRequest, who: Caller, state: State, request: Request
) -> Message:
    _account(state, who, "update", name)
    address = client_address(request)
    if who.via == "oidc":
        raise HTTPException(403, "an SSO user has no local password to prove who they are")
    wait = state.limiter.check(who.name, address)
    if wait is not None:
        raise HTTPException(
            429,
            "too many wrong passwords; try again later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    try:
        ended = await state.accounts.update_password(
            name,
            body.currentPassword,
            body.newPassword,
            sessions=state.sessions,
            caller=who.name,
        )
    except WrongPasswordError:
        state.limiter.failed(who.name, address)
        await state.audit.record(
            who=who.name,
            action="update-password",
            target=_secret_ref(state),
            result="failure",
            address=address,
            message=f"account {name}: wrong current password",
        )
        raise HTTPException(403, "the current password is wrong") from None
    await state.audit.record(
        who=who.name,
        action="update-password",
        target=_secret_ref(state),
        result="success",
        address=address,
        message=f"account {name}, {ended} sessions ended",
    )
    return Message(message=f"password of {name} updated; {ended} sessions ended")
