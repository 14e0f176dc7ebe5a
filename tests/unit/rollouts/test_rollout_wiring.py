"""`gitmoor controller --rollouts`: the option's parsing, and the refusal to run
over Argo Rollouts' own CRDs (the CRD state is given; detecting it is
gitmoor.rollouts.crds' job, tested against the API server there)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gitmoor.cli.controller_cmd import _parse_bool
from gitmoor.cli.main import app
from gitmoor.rollouts import controller as rollout_controller
from gitmoor.rollouts.crds import FOREIGN_CRDS_MESSAGE


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("false", "false"),
        ("False", "false"),
        ("0", "false"),
        ("no", "false"),
        ("true", "true"),
        ("on", "true"),
    ],
)
def test_rollouts_option_reads_booleans(given: str, read: str) -> None:
    assert _parse_bool(given) == read


def test_rollouts_option_refuses_anything_else() -> None:
    with pytest.raises(typer.BadParameter):
        _parse_bool("maybe")
    result = CliRunner().invoke(app, ["controller", "--rollouts=maybe"])
    assert result.exit_code == 2
    assert "not a boolean" in result.output


async def test_foreign_crds_refuse_the_rollout_controller(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def foreign(kube: Any) -> str:
        return "foreign"

    monkeypatch.setattr(rollout_controller, "rollout_crds_state", foreign)
    started: list[str] = []
    monkeypatch.setattr(
        rollout_controller, "RolloutController", lambda *a, **k: started.append("rollouts")
    )
    stop = asyncio.Event()
    caplog.set_level(logging.ERROR, logger="gitmoor.rollouts.controller")
    task = asyncio.create_task(rollout_controller.run_rollouts(None, stop))  # type: ignore[arg-type]
    for _ in range(100):
        if caplog.records:
            break
        await asyncio.sleep(0.01)
    assert not task.done()  # it waits for the stop, leaving the rest of the process running
    stop.set()
    await asyncio.wait_for(task, 5)
    assert started == []
    assert FOREIGN_CRDS_MESSAGE in caplog.text
