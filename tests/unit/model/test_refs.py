import pytest

from gitmoor.model import Health, HealthStatus, ObjectRef, UserInputError


def test_ref_of_core_and_grouped_objects() -> None:
    cm = ObjectRef.of({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    assert (cm.group, cm.version, cm.api_version, cm.namespace) == ("", "v1", "v1", "")
    dep = ObjectRef.of(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}}
    )
    assert (dep.group, dep.version, dep.api_version) == ("apps", "v1", "apps/v1")
    assert str(dep) == "Deployment.apps x/d"


@pytest.mark.parametrize(
    "obj,missing",
    [
        ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "apiVersion"),
        ({"apiVersion": "v1", "metadata": {"name": "a"}}, "kind"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "metadata.name"),
    ],
)
def test_ref_of_incomplete_object_names_what_is_missing(
    obj: dict[str, object], missing: str
) -> None:
    with pytest.raises(UserInputError, match=missing) as err:
        ObjectRef.of(obj, where="apps/a.yaml:3")
    assert "apps/a.yaml:3" in str(err.value)


def test_worst_health_follows_argo_order() -> None:
    hs = [
        Health(HealthStatus.HEALTHY),
        Health(HealthStatus.PROGRESSING, "rolling"),
        Health(HealthStatus.SUSPENDED),
    ]
    assert Health.worst(hs) == Health(HealthStatus.PROGRESSING, "rolling")
    assert (
        Health.worst([*hs, Health(HealthStatus.DEGRADED, "crash")]).status is HealthStatus.DEGRADED
    )
    assert Health.worst([]).status is HealthStatus.HEALTHY
