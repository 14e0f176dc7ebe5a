"""Typed data passed between gitmoor's steps; no I/O here."""

from gitmoor.model.errors import GitmoorError, PermanentError, RetryableError, UserInputError
from gitmoor.model.health import Health, HealthStatus, SyncStatus
from gitmoor.model.refs import (
    Inventory,
    JSONDict,
    Manifest,
    ObjectRef,
    RefKey,
    RenderResult,
    Source,
)

__all__ = [
    "GitmoorError",
    "Health",
    "HealthStatus",
    "Inventory",
    "JSONDict",
    "Manifest",
    "ObjectRef",
    "PermanentError",
    "RefKey",
    "RenderResult",
    "RetryableError",
    "Source",
    "SyncStatus",
    "UserInputError",
]
