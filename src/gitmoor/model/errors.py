"""The error hierarchy every layer raises, drawn once here.

    GitmoorError                 anything gitmoor reports to a user
    ├── UserInputError           the input is wrong (YAML, path, revision, spec):
    │                            fix it and retry; retrying unchanged fails again
    ├── PermanentError           the world refuses (403, unknown kind, conflict):
    │                            no automatic retry
    └── RetryableError           a passing fault (git server down, 5xx, timeout):
                                 retry after ``retry_after`` seconds

Each error carries ``concerns``: the object, file or URL it is about, so that the
CLI and the Application's conditions can name it. Errors from libraries are
re-raised ``from`` the original so the cause stays in the traceback.
(The split into "retry after a delay" and "give up" follows kopf's
TemporaryError/PermanentError.)
"""

from __future__ import annotations


class GitmoorError(Exception):
    """Base of all errors gitmoor reports; ``str()`` is one sentence for a user."""

    def __init__(self, message: str, *, concerns: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.concerns = concerns

    def __str__(self) -> str:
        if self.concerns and self.concerns not in self.message:
            return f"{self.concerns}: {self.message}"
        return self.message


class UserInputError(GitmoorError):
    """The input (a manifest, a path, a revision, a spec) is wrong."""


class PermanentError(GitmoorError):
    """The request is refused for a reason that retrying will not change."""


class RetryableError(GitmoorError):
    """A passing failure; try again after ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, concerns: str | None = None, retry_after: float = 5.0
    ) -> None:
        super().__init__(message, concerns=concerns)
        self.retry_after = retry_after
