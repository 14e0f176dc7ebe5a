"""The audit log line is one line of key=value fields whatever the caller's name
holds: an OIDC claim is the user's to choose, and must not forge a field or a
second line for a log pipeline."""

from __future__ import annotations

import logging
import shlex
from typing import TYPE_CHECKING, cast

import pytest

from gitmoor.server.audit import Audit

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient


@pytest.mark.parametrize(
    "who",
    ["alice", "alice result=ok", 'mallory"\nevent=audit who=admin', "bob\r\nx=y", ""],
)
async def test_one_line_and_the_name_is_one_field(
    who: str, caplog: pytest.LogCaptureFixture
) -> None:
    audit = Audit(cast("KubeClient", None), "gitmoor")  # no target: no Event, no API call
    caplog.set_level(logging.INFO, logger="gitmoor.server.audit")

    await audit.record(
        who=who, action="sync", target=None, result="denied", address="10.0.0.1", message="m"
    )

    [record] = caplog.records
    text = record.getMessage()
    assert "\n" not in text and "\r" not in text
    fields = dict(token.partition("=")[::2] for token in shlex.split(text))
    assert fields["event"] == "audit"
    assert fields["who"] == (who.replace("\n", " ").replace("\r", " ") or "-")
    assert fields["result"] == "denied"
    assert fields["address"] == "10.0.0.1"
