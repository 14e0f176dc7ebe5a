"""Events on Applications and the notification ConfigMap, against the real control plane."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import pytest

from gitmoor.controller.events import AGGREGATE_WINDOW, EventRecorder
from gitmoor.controller.notify import CONFIGMAP, SYNC_FAILED, Notification, Notifier
from gitmoor.engine import store
from gitmoor.kube import wait_for
from gitmoor.model import ObjectRef, UserInputError
from gitmoor.model.application import (
    AppSource,
    Destination,
    application_manifest,
    parse_application,
)
from support.receiver import Receiver, receiving

if TYPE_CHECKING:
    from collections.abc import Iterator

    from gitmoor.kube import KubeClient
    from gitmoor.model.application import Application


async def new_app(kube: KubeClient, apps_ns: str, name: str = "web") -> Application:
    return await store.save_app(
        kube,
        application_manifest(
            name,
            apps_ns,
            AppSource("https://git.example.com/org/deploy.git", "apps"),
            Destination(f"{apps_ns}-dest"),
        ),
    )


async def events_of(kube: KubeClient, app: Application) -> list[dict[str, Any]]:
    ar = await kube.resource("", "v1", "Event")
    listed = await kube.list(ar, app.namespace)
    return sorted(
        (e for e in listed.items if e["involvedObject"].get("uid") == app.uid),
        key=lambda e: e["metadata"]["creationTimestamp"] + e["metadata"]["name"],
    )


async def test_event_points_at_the_application_and_repeats_are_counted(
    kube: KubeClient, apps_ns: str
) -> None:
    app = await new_app(kube, apps_ns)
    assert app.uid
    recorder = EventRecorder(kube)
    await recorder.record(app, "OperationStarted", "sync to 0123abc started by alice")

    [ev] = await wait_for(lambda: events_of(kube, app), within=10, what="the Event")
    assert ev["involvedObject"] == {
        "apiVersion": "gitmoor.io/v1alpha1",
        "kind": "Application",
        "name": "web",
        "namespace": apps_ns,
        "uid": app.uid,
        "resourceVersion": app.resource_version,
    }
    assert ev["metadata"]["name"].startswith("web.")
    assert (ev["reason"], ev["message"], ev["type"]) == (
        "OperationStarted",
        "sync to 0123abc started by alice",
        "Normal",
    )
    assert ev["count"] == 1
    assert ev["source"]["component"] == "gitmoor-controller"
    assert ev["reportingComponent"] == "gitmoor-controller"
    assert ev["reportingInstance"].startswith("gitmoor-controller-")
    assert ev["action"] == "OperationStarted"
    assert ev["eventTime"] and ev["firstTimestamp"] and ev["lastTimestamp"]

    # The same reason and message again: the same Event, counted.
    await recorder.record(app, "OperationStarted", "sync to 0123abc started by alice")

    async def counted() -> list[dict[str, Any]] | None:
        evs = await events_of(kube, app)
        return evs if len(evs) == 1 and evs[0]["count"] == 2 else None

    [again] = await wait_for(counted, within=10, what="count 2")
    assert again["metadata"]["name"] == ev["metadata"]["name"]
    assert again["lastTimestamp"] >= ev["lastTimestamp"]

    # Another message (or type) is another Event.
    await recorder.record(app, "OperationCompleted", "sync failed: 1 object", type="Warning")

    async def two() -> list[dict[str, Any]] | None:
        evs = await events_of(kube, app)
        return evs if len(evs) == 2 else None

    evs = await wait_for(two, within=10, what="a second Event")
    warning = next(e for e in evs if e["reason"] == "OperationCompleted")
    assert (warning["type"], warning["count"]) == ("Warning", 1)


async def test_a_repeat_after_the_window_or_after_expiry_is_a_new_event(
    kube: KubeClient, apps_ns: str
) -> None:
    app = await new_app(kube, apps_ns)
    now = [1000.0]
    recorder = EventRecorder(kube, clock=lambda: now[0])
    await recorder.record(app, "ResourceUpdated", "updated 3 objects")
    now[0] += AGGREGATE_WINDOW + 1
    await recorder.record(app, "ResourceUpdated", "updated 3 objects")
    evs = await events_of(kube, app)
    assert [e["count"] for e in evs] == [1, 1]
    assert evs[0]["metadata"]["name"] != evs[1]["metadata"]["name"]

    # The API server's event TTL removed the Event: the next repeat creates one again.
    latest = evs[1]["metadata"]["name"]
    await kube.delete(ObjectRef("", "v1", "Event", apps_ns, latest))
    await recorder.record(app, "ResourceUpdated", "updated 3 objects")
    evs = await events_of(kube, app)
    assert len(evs) == 2
    assert latest not in {e["metadata"]["name"] for e in evs}
    assert [e["count"] for e in evs] == [1, 1]


async def test_a_refused_event_is_logged_not_raised(
    kube: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # The API server refuses an Event in a namespace that does not exist (404).
    missing = f"no-such-ns-{secrets.token_hex(3)}"
    manifest = application_manifest(
        "ghost", missing, AppSource("https://git.example.com/org/deploy.git"), Destination("x")
    )
    manifest["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    app = parse_application(manifest)
    caplog.set_level(logging.WARNING, logger="gitmoor.controller.events")
    await EventRecorder(kube).record(app, "OperationStarted", "sync started")
    assert f"event=event_record_failed app={missing}/ghost reason=OperationStarted" in caplog.text


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


async def put_config(kube: KubeClient, namespace: str, config: str) -> None:
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": namespace},
            "data": {"config.yaml": config},
        },
        force=True,
    )


def hooks(notifier: Notifier) -> list[tuple[str, str]]:
    return [(w.name, w.url) for w in notifier.config.webhooks]


async def test_notifier_loads_its_configmap(
    kube: KubeClient, namespace: str, receiver: Receiver
) -> None:
    notifier = Notifier()
    await notifier.load(kube, namespace)  # no ConfigMap: no notifications
    assert hooks(notifier) == []

    await put_config(
        kube,
        namespace,
        f"""
webhooks:
- name: ops
  url: {receiver.url}
  format: slack
  on: [sync-failed]
templates:
  sync-failed: "{{app}} in {{namespace}} failed at {{revision}}"
""",
    )
    await notifier.load(kube, namespace)
    assert hooks(notifier) == [("ops", receiver.url)]

    task = asyncio.create_task(notifier.run())
    try:
        notifier.notify(Notification(SYNC_FAILED, "web", namespace, "0123abc", "boom", "", ""))
        await notifier.drain(10)
        assert receiver.bodies == [{"text": f"web in {namespace} failed at 0123abc"}]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # A broken config.yaml names the ConfigMap and the field, and changes nothing.
    await put_config(kube, namespace, "webhooks:\n- name: ops\n  url: ftp://127.0.0.1/x\n")
    with pytest.raises(UserInputError) as e:
        await notifier.load(kube, namespace)
    assert f"ConfigMap {namespace}/{CONFIGMAP}" in str(e.value)
    assert "webhooks[0].url" in str(e.value)
    assert hooks(notifier) == [("ops", receiver.url)]

    # Deleting the ConfigMap turns notifications off.
    await kube.delete(ObjectRef("", "v1", "ConfigMap", namespace, CONFIGMAP))
    await notifier.load(kube, namespace)
    assert hooks(notifier) == []
