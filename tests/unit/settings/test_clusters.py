"""Cluster Secrets <-> ClusterConfig: Argo CD's shape, both ways, and what is refused."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, cast

import pytest

from gitmoor.kube import ClusterConfig, KubeClient
from gitmoor.model import UserInputError
from gitmoor.settings.clusters import (
    CLUSTER_SECRET_TYPE,
    IN_CLUSTER,
    SECRET_TYPE_LABEL,
    ClusterRegistry,
    check_cluster_name,
    cluster_secret,
    config_from_secret,
    is_in_cluster,
    secret_name,
)

CA = b"-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIsecretkeymaterial\n-----END EC PRIVATE KEY-----\n"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-token"


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def stored(manifest: dict[str, Any], rv: str = "1") -> dict[str, Any]:
    """What the API server returns for an applied manifest: stringData folded into data."""
    out = {k: v for k, v in manifest.items() if k != "stringData"}
    out["data"] = {k: b64(v) for k, v in manifest["stringData"].items()}
    out["metadata"] = {**manifest["metadata"], "resourceVersion": rv}
    return out


CERT_CONFIG = ClusterConfig(
    server="https://127.0.0.1:6443",
    ca_pem=CA,
    client_cert_pem=CERT,
    client_key_pem=KEY,
    namespace="team-a",
    name="admin@kind",
)
TOKEN_CONFIG = ClusterConfig(server="https://prod.example:443", ca_pem=CA, token=TOKEN)
INSECURE_CONFIG = ClusterConfig(server="http://localhost:8080", insecure_skip_tls_verify=True)


@pytest.mark.parametrize("config", [CERT_CONFIG, TOKEN_CONFIG, INSECURE_CONFIG])
def test_round_trip_through_a_stored_secret(config: ClusterConfig) -> None:
    secret = stored(cluster_secret("prod", config, namespace="gitmoor"))
    back = config_from_secret(secret)
    # The registered name replaces the kubeconfig context's; a context's default
    # namespace means nothing for a destination (each app names its namespace).
    assert back.name == "prod"
    assert back.namespace == "default"
    for field in (
        "server",
        "ca_pem",
        "client_cert_pem",
        "client_key_pem",
        "token",
        "insecure_skip_tls_verify",
    ):
        assert getattr(back, field) == getattr(config, field), field


def test_the_secret_has_argo_cds_shape() -> None:
    secret = cluster_secret("prod", CERT_CONFIG, namespace="apps")
    assert secret["metadata"]["namespace"] == "apps"
    assert secret["metadata"]["labels"] == {SECRET_TYPE_LABEL: CLUSTER_SECRET_TYPE}
    assert secret["metadata"]["labels"] == {"gitmoor.io/secret-type": "cluster"}
    data = secret["stringData"]
    assert set(data) == {"name", "server", "config"}
    assert data["name"] == "prod"
    assert data["server"] == "https://127.0.0.1:6443"
    config = json.loads(data["config"])
    assert config == {
        "tlsClientConfig": {
            "insecure": False,
            "caData": b64(CA),
            "certData": b64(CERT),
            "keyData": b64(KEY),
        }
    }
    token_config = json.loads(cluster_secret("p", TOKEN_CONFIG)["stringData"]["config"])
    assert token_config["bearerToken"] == TOKEN
    assert "keyData" not in token_config["tlsClientConfig"]


def test_an_argo_cd_secret_as_its_docs_write_it_is_read() -> None:
    # argo-cd docs, operator-manual/declarative-setup.md "Clusters", with our label.
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "mycluster-secret",
            "namespace": "gitmoor",
            "labels": {"gitmoor.io/secret-type": "cluster"},
        },
        "type": "Opaque",
        "stringData": {
            "name": "mycluster.example.com",
            "server": "https://mycluster.example.com/",
            "config": json.dumps(
                {
                    "bearerToken": TOKEN,
                    "tlsClientConfig": {"insecure": False, "caData": b64(CA)},
                },
                indent=2,
            ),
        },
    }
    cfg = config_from_secret(secret)
    assert cfg.server == "https://mycluster.example.com"
    assert cfg.token == TOKEN and cfg.ca_pem == CA
    assert cfg.client_key_pem is None and not cfg.insecure_skip_tls_verify


def test_string_data_overrides_data_as_the_api_server_merges_them() -> None:
    secret = stored(cluster_secret("prod", TOKEN_CONFIG))
    secret["stringData"] = {"server": "https://other.example"}
    assert config_from_secret(secret).server == "https://other.example"


def _with_config(doc: dict[str, Any]) -> dict[str, Any]:
    secret = cluster_secret("prod", TOKEN_CONFIG)
    secret["stringData"]["config"] = json.dumps(doc)
    return secret


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"execProviderConfig": {"command": "aws"}}, "execProviderConfig"),
        ({"awsAuthConfig": {"clusterName": "x"}}, "awsAuthConfig"),
        ({"username": "admin", "password": "hunter2"}, "username"),
        ({"proxyUrl": "http://proxy:3128"}, "proxyUrl"),
        ({"tlsClientConfig": {"serverName": "kubernetes"}}, "serverName"),
    ],
)
def test_ways_of_connecting_gitmoor_lacks_are_refused_by_name(
    doc: dict[str, Any], field: str
) -> None:
    with pytest.raises(UserInputError) as e:
        config_from_secret(_with_config(doc))
    assert field in str(e.value)
    assert "cluster prod" in str(e.value)
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"tlsClientConfig": {"keyData": "not base64 " + KEY.decode()}}, "keyData is not base64"),
        ({"tlsClientConfig": {"insecure": "yes"}}, "insecure must be true or false"),
        ({"tlsClientConfig": "x"}, "tlsClientConfig must be an object"),
        ({"bearerToken": 42}, "bearerToken must be a string"),
        ([1, 2], "config must be a JSON object"),
    ],
)
def test_malformed_configs_name_the_field_never_the_value(doc: Any, says: str) -> None:
    secret = cluster_secret("prod", TOKEN_CONFIG)
    secret["stringData"]["config"] = json.dumps(doc)
    with pytest.raises(UserInputError) as e:
        config_from_secret(secret)
    assert says in str(e.value)
    assert "Secret gitmoor/" in str(e.value)
    assert "secretkeymaterial" not in str(e.value)


def test_config_that_is_not_json_does_not_echo_it() -> None:
    secret = cluster_secret("prod", TOKEN_CONFIG)
    secret["stringData"]["config"] = '{"bearerToken": "' + TOKEN
    with pytest.raises(UserInputError) as e:
        config_from_secret(secret)
    assert "config is not JSON" in str(e.value)
    assert TOKEN not in str(e.value)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"name": ""}, "has no name"),
        ({"server": "prod.example:6443"}, "server must be an http(s) URL"),
        ({"server": ""}, "server must be an http(s) URL"),
    ],
)
def test_name_and_server_are_required(fields: dict[str, str], says: str) -> None:
    secret = cluster_secret("prod", TOKEN_CONFIG)
    secret["stringData"].update(fields)
    with pytest.raises(UserInputError, match=re.escape(says)):
        config_from_secret(secret)


@pytest.mark.parametrize("name", ["", "   ", IN_CLUSTER, " prod", "prod\n"])
def test_names_that_cannot_be_registered(name: str) -> None:
    with pytest.raises(UserInputError):
        check_cluster_name(name)
    with pytest.raises(UserInputError):
        cluster_secret(name, TOKEN_CONFIG)


def test_in_cluster_names() -> None:
    assert is_in_cluster("") and is_in_cluster("in-cluster")
    assert not is_in_cluster("prod") and not is_in_cluster("In-Cluster")


@pytest.mark.parametrize(
    "name", ["prod", "Prod", "eu-west/1", "a" * 300, "日本", "prod.example.com:6443"]
)
def test_secret_names_are_valid_stable_and_distinct(name: str) -> None:
    s = secret_name(name)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", s) and len(s) <= 63, s
    assert s == secret_name(name)
    assert s.startswith("cluster-")
    assert secret_name("prod") != secret_name("Prod")


async def test_registry_serves_home_for_in_cluster_without_a_request() -> None:
    home = cast("KubeClient", object())  # any request would fail on a bare object
    registry = ClusterRegistry(home)
    assert await registry.client_for("") is home
    assert await registry.client_for(IN_CLUSTER) is home
    assert registry.clients() == {IN_CLUSTER: home}
    await registry.aclose()
