"""Events the controller records are scrubbed (issue 13): a message that quotes
a value of an app's Secret (say, a sync error echoing the API server's refusal)
is written to the real API server with the value's mask, and a repeat of it
aggregates into the same Event."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from gitmoor.controller.events import EventRecorder
from gitmoor.engine import redactor_for, store
from gitmoor.model.application import AppSource, Destination, application_manifest

if TYPE_CHECKING:
    from gitmoor.kube import KubeClient

VALUE = "event-redaction-value-9d41c7"


async def _events(kube: KubeClient, namespace: str, uid: str) -> list[dict[str, Any]]:
    ar = await kube.resource("", "v1", "Event")
    return [
        e for e in (await kube.list(ar, namespace)).items if e["involvedObject"].get("uid") == uid
    ]


async def test_an_event_quoting_a_secret_value_is_written_with_its_mask(
    kube: KubeClient, apps_ns: str
) -> None:
    app = await store.save_app(
        kube,
        application_manifest(
            "redacted-events",
            apps_ns,
            AppSource("https://git.example.com/org/deploy.git", "apps"),
            Destination(f"{apps_ns}-dest"),
        ),
    )
    # What the engine does while it compares the app: its Redactor learns the Secret.
    redactor = redactor_for(app)
    redactor.learn(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db"},
            "data": {"password": base64.b64encode(VALUE.encode()).decode()},
        }
    )
    recorder = EventRecorder(kube)
    message = f'sync Failed: Secret "db" is invalid: Invalid value: "{VALUE}"'
    await recorder.record(app, "OperationCompleted", message, type="Warning")
    await recorder.record(app, "OperationCompleted", message, type="Warning")

    (event,) = await _events(kube, apps_ns, app.uid)
    text = json.dumps(event)
    assert VALUE not in text
    assert base64.b64encode(VALUE.encode()).decode() not in text
    assert event["message"] == (
        f'sync Failed: Secret "db" is invalid: Invalid value: "{redactor.mask_value(VALUE)}"'
    )
    assert event["count"] == 2, "the repeat aggregated into the scrubbed Event"
