"""A real admission refusal for tests: a ValidatingAdmissionPolicy (CEL, in the
API server itself) that refuses to DELETE the ConfigMaps carrying a label, in
one namespace. It is what an organisation's policy engine does to protected
objects, and lets a test see how gitmoor handles a delete the API refuses."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from gitmoor.kube import ApiError, wait_for
from gitmoor.model import ObjectRef

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from gitmoor.kube import KubeClient

PROTECTED_LABEL = "test.gitmoor.io/undeletable"
_GROUP, _VERSION = "admissionregistration.k8s.io", "v1"


def _policy_refs(namespace: str) -> tuple[ObjectRef, ObjectRef]:
    name = f"protect-{namespace}"[:63]
    return (
        ObjectRef(_GROUP, _VERSION, "ValidatingAdmissionPolicy", "", name),
        ObjectRef(_GROUP, _VERSION, "ValidatingAdmissionPolicyBinding", "", name),
    )


async def unprotect(kube: KubeClient, namespace: str) -> None:
    """Remove the policy (its binding first); deletes are allowed again once the
    API server has dropped it (polled by the caller if it matters)."""
    policy, binding = _policy_refs(namespace)
    await kube.delete(binding)
    await kube.delete(policy)


@contextlib.asynccontextmanager
async def deletes_refused(kube: KubeClient, namespace: str) -> AsyncIterator[None]:
    """While inside: a DELETE of a ConfigMap labelled ``PROTECTED_LABEL`` in
    ``namespace`` is refused by the API server (waited for with a probe)."""
    policy, binding = _policy_refs(namespace)
    await kube.create(
        {
            "apiVersion": f"{_GROUP}/{_VERSION}",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["DELETE"],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(oldObject.metadata.labels) || "
                        f"!('{PROTECTED_LABEL}' in oldObject.metadata.labels)",
                        "message": "this ConfigMap is protected from deletion",
                    }
                ],
            },
        }
    )
    await kube.create(
        {
            "apiVersion": f"{_GROUP}/{_VERSION}",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": binding.name},
            "spec": {
                "policyName": policy.name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )
    try:
        probe = ObjectRef("", "v1", "ConfigMap", namespace, "protection-probe")
        manifest = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": probe.name,
                "namespace": namespace,
                "labels": {PROTECTED_LABEL: "true"},
            },
        }

        async def refused() -> bool:
            # The policy takes effect once the API server has compiled it: until
            # then the probe's delete goes through, and the probe is made again.
            if await kube.get(probe) is None:
                await kube.create(manifest)
            try:
                await kube.delete(probe)
            except ApiError:
                return True
            return False

        await wait_for(refused, within=60, what="the deletion policy in force")
        yield
    finally:
        with contextlib.suppress(ApiError):
            await unprotect(kube, namespace)
