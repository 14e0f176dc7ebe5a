"""What `gitmoor app create` sends through the server's API, and what it refuses.

The API's create body carries the spec flat (project, source, destination,
automation, sync options, Helm); a manifest with anything more (an Argo CD
Application's ignoreDifferences, a retry policy) is refused by name, since the
app created would not be the one asked for.
"""

from __future__ import annotations

import pytest
import typer

from gitmoor.cli.app_remote import _create_body
from gitmoor.model.application import (
    AppSource,
    Automated,
    Destination,
    HelmSource,
    application_manifest,
)


def test_the_create_body_carries_what_app_create_writes() -> None:
    manifest = application_manifest(
        "web",
        "gitmoor",
        AppSource(
            repo_url="https://git.example/org/repo.git",
            path="charts/web",
            target_revision="v1.2.0",
            helm=HelmSource(release_name="web-prod", value_files=("prod.yaml",)),
        ),
        Destination(namespace="prod", name="east"),
        project="team-a",
        automated=Automated(prune=True, self_heal=False),
        sync_options=("CreateNamespace=true",),
    )
    assert _create_body(manifest) == {
        "name": "web",
        "project": "team-a",
        "repoURL": "https://git.example/org/repo.git",
        "path": "charts/web",
        "targetRevision": "v1.2.0",
        "destination": {"name": "east", "namespace": "prod"},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": False, "allowEmpty": False},
            "syncOptions": ["CreateNamespace=true"],
            "suspended": False,
        },
        "helm": {"releaseName": "web-prod", "valueFiles": ["prod.yaml"]},
    }


def test_fields_the_api_cannot_carry_are_refused_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = application_manifest(
        "web", "gitmoor", AppSource(repo_url="https://git.example/r.git"), Destination("prod")
    )
    manifest["spec"]["ignoreDifferences"] = [{"kind": "Deployment", "jsonPointers": ["/spec"]}]
    manifest["spec"]["syncPolicy"] = {"retry": {"limit": 3}}
    with pytest.raises(typer.Exit) as e:
        _create_body(manifest)
    assert e.value.exit_code == 2
    said = capsys.readouterr().err
    assert "spec.ignoreDifferences" in said and "spec.syncPolicy.retry" in said
    assert "--core" in said
