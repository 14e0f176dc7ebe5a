"""The local Kubernetes control plane used by gitmoor's tests and demo."""

from gitmoor.testenv.controlplane import (
    Binaries,
    ControlPlane,
    ControlPlaneError,
    find_binaries,
    free_port,
    port_is_free,
)

__all__ = [
    "Binaries",
    "ControlPlane",
    "ControlPlaneError",
    "find_binaries",
    "free_port",
    "port_is_free",
]
