"""`gitmoor controller --rollouts`: the option's parsing, and the refusal to run
over Argo Rollouts' own CRDs (the CRD state is given; detecting it is
gitmoor.rollouts.crds' job, tested against the API server there)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime
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


async def test_a_rollout_that_fails_every_time_is_retried_ever_more_slowly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reconcile that fails the same way each time (a crash, a ReplicaSet name
    taken by an object the Rollout does not own) used to be queued again 50 ms
    later for ever: 20 API round trips and a traceback a second per Rollout."""
    ctl = rollout_controller.RolloutController(None)  # type: ignore[arg-type]

    async def crash(namespace: str, name: str) -> None:
        raise RuntimeError("boom")

    delays: list[float] = []
    real_enqueue_at = ctl.enqueue_at

    def record(key: tuple[str, str], at: datetime) -> None:
        delays.append((at - datetime.now(UTC)).total_seconds())
        real_enqueue_at(key, at)

    monkeypatch.setattr(ctl, "reconcile", crash)
    monkeypatch.setattr(ctl, "enqueue_at", record)
    logging.getLogger("gitmoor.rollouts.controller").disabled = True
    worker = asyncio.create_task(ctl.queue.work(ctl._handle))
    try:
        ctl.enqueue("ns", "web")
        for _ in range(3000):
            if len(delays) >= 5:
                break
            await asyncio.sleep(0.01)
    finally:
        worker.cancel()
        ctl.queue.cancel_all()
        logging.getLogger("gitmoor.rollouts.controller").disabled = False
    assert len(delays) >= 5
    assert all(b > 1.5 * a for a, b in itertools.pairwise(delays[:5]))
    assert delays[0] > 0
