"""The caller of one request, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: how the caller proved who they are
Via = Literal["session", "token", "oidc"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A user (a local account or an OIDC subject) or an API token's account.

    ``groups`` are the RBAC subjects besides the name: OIDC group claims, as
    Argo CD's ``scopes: [groups]`` maps them.
    """

    name: str
    groups: tuple[str, ...] = ()
    via: Via = "session"
    #: the web session (or session token) this request came with; "" for API tokens
    session_id: str = ""
    #: the API token's id when ``via == "token"``
    token_id: str = ""

    @property
    def subjects(self) -> tuple[str, ...]:
        return (self.name, *self.groups)
