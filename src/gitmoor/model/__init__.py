"""Typed data passed between gitmoor's steps; no I/O here."""

from gitmoor.model.errors import GitmoorError, PermanentError, RetryableError, UserInputError
from gitmoor.model.health import Health, HealthStatus, SyncStatus
from gitmoor.model.refs import JSONDict, Manifest, ObjectRef, RenderResult, Source

__all__ = [
    "GitmoorError",
    "Health",
    "HealthStatus",
    "JSONDict",
    "Manifest",
    "ObjectRef",
    "PermanentError",
    "RenderResult",
    "RetryableError",
    "Source",
    "SyncStatus",
    "UserInputError",
]
