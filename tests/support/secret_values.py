"""The values the server tests put into Secrets, repository credentials and
cluster registrations. No API response, SSE message, log line or Kubernetes
Event may contain one (issue 12: "No Secret value anywhere"); the server tests'
``SecretGuard`` (tests/integration/server/conftest.py) searches for them, and
for their base64 forms. Tests import them from here, so the guard knows every
value a test sends."""

from __future__ import annotations

#: what the tests put into Secrets (manifests in git, ``stringData``)
SECRET_VALUE = "gm-test-secret-value-5f3a9c1e"
#: a repository password the CRUD tests send (write-only: never returned)
REPO_PASSWORD = "gm-test-repo-password-8d2b7e40"
#: a repository SSH private key or TLS client key body
REPO_KEY = "gm-test-repo-private-key-2a6f01d9"
#: a cluster bearer token the CRUD tests send
CLUSTER_TOKEN = "gm-test-cluster-token-c41e96ab"
#: values some test files send under names of their own (test_app_resources.py,
#: test_crud.py); listed so the guard looks for them too, until they use the above
OTHER_TEST_VALUES: tuple[str, ...] = (
    "hunter2-d-resources-7f3a",
    "pw-Zq81-never-shown",
    "k3y-never-shown",
    "tok-Rk22-never-shown",
)
#: every value no response, SSE message, log line or Event may contain
SECRET_VALUES: tuple[str, ...] = (
    SECRET_VALUE,
    REPO_PASSWORD,
    REPO_KEY,
    CLUSTER_TOKEN,
    *OTHER_TEST_VALUES,
)
