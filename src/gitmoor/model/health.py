"""Health and sync statuses, with the vocabulary of Argo CD."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class HealthStatus(enum.Enum):
    """Health of an object or an app.

    Members are declared from best to worst; ``severity`` is that order, so the
    health of an app is ``max(resources, key=severity)``. The order matches Argo
    CD's ``health.IsWorse``: Healthy < Suspended < Progressing < Missing <
    Degraded < Unknown.
    """

    HEALTHY = "Healthy"
    SUSPENDED = "Suspended"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def severity(self) -> int:
        return _ORDER.index(self)


_ORDER = list(HealthStatus)


@dataclass(frozen=True, slots=True)
class Health:
    status: HealthStatus
    message: str = ""

    @staticmethod
    def worst(healths: Iterable[Health]) -> Health:
        """The worst health of several; Healthy when there are none."""
        worst = Health(HealthStatus.HEALTHY)
        for h in healths:
            if h.status.severity > worst.status.severity:
                worst = h
        return worst


class SyncStatus(enum.Enum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"
