"""Fixtures for project tests: the CRDs once per session, and per test an apps
namespace, a git repository, an Engine, ``team-a-*`` namespaces (the names the
``team-a`` project permits) and a real git server over HTTP with Basic auth."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import pytest

from gitmoor.model import ObjectRef
from support.apps import create_namespace

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from gitmoor.kube import KubeClient


@pytest.fixture
async def team_namespace(kube: KubeClient) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Makes ``team-a-<random>`` namespaces (deleted afterwards, not waited for)."""
    made: list[str] = []

    async def make() -> str:
        name = await create_namespace(kube, f"team-a-{secrets.token_hex(4)}")
        made.append(name)
        return name

    yield make
    for name in made:
        await kube.delete(ObjectRef("", "v1", "Namespace", "", name))
