"""The web UI's pure parts: where the login page may send a browser, and what
the list's filters ask of the API."""

from __future__ import annotations

import pytest

from gitmoor.server.api.schemas import AppSummary
from gitmoor.server.ui.pages import safe_next
from gitmoor.server.ui.routes import SIG_FIELDS, Filters, signature


@pytest.mark.parametrize(
    ("asked", "goes"),
    [
        ("/applications/web?tab=diff", "/applications/web?tab=diff"),
        ("/settings/clusters", "/settings/clusters"),
        ("", "/applications"),
        ("//evil.example/x", "/applications"),
        ("https://evil.example/", "/applications"),
        ("/\\evil.example", "/applications"),
        ("javascript:alert(1)", "/applications"),
        ("applications", "/applications"),
    ],
)
def test_login_goes_back_only_to_a_path_of_this_server(asked: str, goes: str) -> None:
    assert safe_next(asked) == goes


def test_filters_become_the_api_query() -> None:
    assert Filters().api() == {}
    assert not Filters().active
    f = Filters(project="team-a", sync="OutOfSync", repo="https://git.example/r", search="web")
    assert f.active
    assert f.api() == {
        "project": ["team-a"],
        "sync": ["OutOfSync"],
        "repo": ["https://git.example/r"],
        "search": "web",
    }


def test_signature_joins_the_shown_fields_as_the_script_does() -> None:
    # model_construct: only the fields this test is about (the schema grows)
    s = AppSummary.model_construct(
        name="web",
        project="default",
        repoURL="https://git.example/r",
        path="web",
        targetRevision="HEAD",
        cluster="in-cluster",
        namespace="prod",
        sync="Synced",
        revision="abc",
        health="Healthy",
        healthMessage="",
        operationPhase="Succeeded",
        operationMessage="done",
        automated=True,
        suspended=False,
        operationRequested=False,
        reconciledAt="2026-01-01T00:00:00Z",
        resources=3,
        conditions=[],
    )
    parts = signature(s).split("\x1f")
    assert len(parts) == len(SIG_FIELDS)
    shown = dict(zip(SIG_FIELDS, parts, strict=True))
    # booleans as apps.js writes them; reconciledAt is left out (it changes on every
    # refresh and no row shows it, so it must not redraw rows)
    assert shown["automated"] == "1" and shown["suspended"] == "0"
    assert shown["resources"] == "3"
    assert "reconciledAt" not in shown
