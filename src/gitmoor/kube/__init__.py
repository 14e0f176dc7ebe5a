"""The one module that speaks HTTP to Kubernetes API servers."""

from gitmoor.kube.client import (
    FIELD_MANAGER,
    APIResource,
    KubeClient,
    ObjectList,
    WatchEvent,
    wait_for,
)
from gitmoor.kube.config import ClusterConfig, default_config, in_cluster_config, load_kubeconfig
from gitmoor.kube.errors import (
    ApiError,
    ApiUnavailableError,
    ConflictError,
    KubeConfigError,
    NotFoundError,
    UnknownKindError,
)

__all__ = [
    "FIELD_MANAGER",
    "APIResource",
    "ApiError",
    "ApiUnavailableError",
    "ClusterConfig",
    "ConflictError",
    "KubeClient",
    "KubeConfigError",
    "NotFoundError",
    "ObjectList",
    "UnknownKindError",
    "WatchEvent",
    "default_config",
    "in_cluster_config",
    "load_kubeconfig",
    "wait_for",
]
