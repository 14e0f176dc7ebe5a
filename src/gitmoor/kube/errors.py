"""API errors that carry the server's Status.

The API server answers a failed request with a ``Status`` object (reason,
message, details.causes). We keep it whole, so that callers can tell a
conflict from a validation error without parsing text, and map it onto the
retry classes of ``gitmoor.model.errors`` (as lightkube's ApiError does).
"""

from __future__ import annotations

from typing import Any

from gitmoor.model import PermanentError, RetryableError, UserInputError


class ApiError(PermanentError):
    """The API server refused a request (4xx other than 429)."""

    def __init__(self, status: dict[str, Any], *, concerns: str | None = None) -> None:
        self.status = status
        self.code: int = int(status.get("code") or 0)
        self.reason: str = str(status.get("reason") or "")
        super().__init__(
            str(status.get("message") or self.reason or f"HTTP {self.code}"), concerns=concerns
        )

    @property
    def causes(self) -> list[dict[str, Any]]:
        details = self.status.get("details") or {}
        causes = details.get("causes") or []
        return [c for c in causes if isinstance(c, dict)]


class NotFoundError(ApiError):
    """404: the object, or its kind, does not exist."""


class ConflictError(ApiError):
    """409: a field-manager conflict on apply, or a resourceVersion conflict."""


class ApiUnavailableError(RetryableError):
    """The API server could not be reached, timed out, throttled (429) or failed (5xx)."""


def api_error(status: dict[str, Any], *, concerns: str | None = None) -> ApiError:
    code = int(status.get("code") or 0)
    cls: type[ApiError] = ApiError
    if code == 404:
        cls = NotFoundError
    elif code == 409:
        cls = ConflictError
    return cls(status, concerns=concerns)


class UnknownKindError(UserInputError):
    """The API server serves no resource for a group/version/kind."""


class KubeConfigError(UserInputError):
    """A kubeconfig that cannot be used (missing, malformed, unsupported auth)."""
