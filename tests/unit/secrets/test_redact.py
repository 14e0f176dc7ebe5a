"""The one redaction policy (gitmoor.secrets.redact), on plain data."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from typing import Any

import pytest

from gitmoor.model.redaction import RedactRule
from gitmoor.secrets.redact import (
    LAST_APPLIED,
    MASK_LEN,
    REGISTRY_SIZE,
    Redactor,
    ScrubFilter,
    _ValueIndex,
    install_log_filter,
    is_mask,
    scrub_log,
)

MASK_RE = re.compile(r"<redacted:[0-9a-f]{8}>")


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret(data: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        **extra,
    }
    if data is not None:
        obj["data"] = {k: b64(v) for k, v in data.items()}
    return obj


def configmap(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "shop"},
        "data": data,
    }


# --- the mask ---------------------------------------------------------------------


def test_a_mask_has_one_length_whatever_the_value() -> None:
    r = Redactor("shop/app/uid-1")
    out = r.mask(secret({"short": "x", "long": "y" * 10_000, "empty": ""}))
    assert out is not None
    for value in out["data"].values():
        assert MASK_RE.fullmatch(value)
        assert len(value) == MASK_LEN
        assert is_mask(value)


def test_unchanged_values_mask_the_same_changed_ones_differently() -> None:
    r = Redactor("shop/app/uid-1")
    live = r.mask(secret({"same": "s3cret", "changed": "old-value"}))
    desired = r.mask(secret({"same": "s3cret", "changed": "new-value"}))
    assert live is not None and desired is not None
    assert live["data"]["same"] == desired["data"]["same"]
    assert live["data"]["changed"] != desired["data"]["changed"]


def test_data_and_string_data_of_one_value_mask_the_same() -> None:
    # The manifest may say stringData; the server stores data (base64).
    r = Redactor("shop/app/uid-1")
    out = r.mask(secret({"a": "hunter22"}, stringData={"b": "hunter22"}))
    assert out is not None
    assert out["data"]["a"] == out["stringData"]["b"]


def test_equal_values_in_two_apps_cannot_be_correlated() -> None:
    one = Redactor("shop/app/uid-1").mask(secret({"p": "same-everywhere"}))
    two = Redactor("shop/app/uid-2").mask(secret({"p": "same-everywhere"}))
    assert one is not None and two is not None
    assert one["data"]["p"] != two["data"]["p"]


def test_one_app_masks_the_same_with_a_new_redactor() -> None:
    # An app's masks depend on its identity only: the CLI and the engine agree.
    a = Redactor("shop/app/uid-1").mask_value("v")
    assert Redactor("shop/app/uid-1").mask_value("v") == a


def test_mask_copies_and_leaves_the_input_alone() -> None:
    original = secret({"p": "hunter22"})
    before = json.loads(json.dumps(original))
    Redactor("a").mask(original)
    assert original == before


def test_mask_in_place() -> None:
    obj = secret({"p": "hunter22"})
    assert Redactor("a").mask(obj, copy=False) is obj
    assert is_mask(obj["data"]["p"])


def test_other_kinds_are_left_as_they_are() -> None:
    cm = configmap({"token": "abc"})
    assert Redactor("a").mask(cm) == cm
    assert Redactor("a").mask(None) is None
    # A Secret kind of another group is a custom resource: only rules reach it.
    custom = {"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "v"}}
    assert Redactor("a").mask(custom) == custom


def test_last_applied_configuration_is_removed_from_masked_objects() -> None:
    obj = secret({"p": "hunter22"})
    obj["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": {"p": b64("x")}}),
        "team": "payments",
    }
    out = Redactor("a").mask(obj)
    assert out is not None
    assert out["metadata"]["annotations"] == {"team": "payments"}


def test_a_list_of_objects_is_masked_item_by_item() -> None:
    out = Redactor("a").mask({"apiVersion": "v1", "kind": "List", "items": [secret({"p": "x"})]})
    assert out is not None
    assert is_mask(out["items"][0]["data"]["p"])


# --- rules ------------------------------------------------------------------------


def test_a_key_glob_masks_matching_keys_of_a_kind() -> None:
    r = Redactor("a", [RedactRule(kind="ConfigMap", fields=("data.*token*",))])
    out = r.mask(configmap({"api-token": "t0k3n-value", "tokenizer": "t2", "url": "https://x"}))
    assert out is not None
    assert is_mask(out["data"]["api-token"])
    assert is_mask(out["data"]["tokenizer"])
    assert out["data"]["url"] == "https://x"


def test_a_glob_segment_matches_a_key_with_dots() -> None:
    r = Redactor("a", [RedactRule(kind="ConfigMap", fields=("data.app.properties",))])
    out = r.mask(configmap({"app.properties": "password=1234", "app.yaml": "x: 1"}))
    assert out is not None
    assert is_mask(out["data"]["app.properties"])
    assert out["data"]["app.yaml"] == "x: 1"


def test_a_json_pointer_names_one_field_exactly() -> None:
    r = Redactor("a", [RedactRule(group="example.com", kind="Database", fields=("/spec/a~1b",))])
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Database",
        "metadata": {"name": "db"},
        "spec": {"a/b": "secret-value", "a*": "not named"},
    }
    out = r.mask(obj)
    assert out is not None
    assert is_mask(out["spec"]["a/b"])
    assert out["spec"]["a*"] == "not named"


def test_rules_match_group_and_kind_by_glob() -> None:
    rule = RedactRule(group="*.example.com", kind="Data*", fields=("/spec/key",))
    r = Redactor("a", [rule])

    def obj(api_version: str, kind: str) -> dict[str, Any]:
        return {"apiVersion": api_version, "kind": kind, "spec": {"key": "v4lue"}}

    def masked(api_version: str, kind: str) -> bool:
        out = r.mask(obj(api_version, kind))
        return out is not None and is_mask(out["spec"]["key"])

    assert masked("db.example.com/v1", "Database")
    assert not masked("example.com/v1", "Database")  # the group glob needs a subdomain
    assert not masked("db.example.com/v1", "Cache")
    core = Redactor("a", [RedactRule(group="", kind="ConfigMap", fields=("/spec/key",))])
    out = core.mask(obj("v1", "ConfigMap"))
    assert out is not None and is_mask(out["spec"]["key"])


def test_a_non_string_value_becomes_one_mask() -> None:
    r = Redactor("a", [RedactRule(kind="Database", fields=("spec.credentials", "spec.port"))])
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Database",
        "metadata": {"name": "db"},
        "spec": {"credentials": {"user": "admin", "password": "hunter22"}, "port": 5432},
    }
    out = r.mask(obj)
    assert out is not None
    assert is_mask(out["spec"]["credentials"]) and is_mask(out["spec"]["port"])
    changed = json.loads(json.dumps(obj))
    changed["spec"]["credentials"]["password"] = "hunter23"
    again = r.mask(changed)
    assert again is not None
    assert again["spec"]["credentials"] != out["spec"]["credentials"]
    assert again["spec"]["port"] == out["spec"]["port"]


def test_a_string_and_a_number_of_the_same_text_mask_differently() -> None:
    r = Redactor("a", [RedactRule(kind="ConfigMap", fields=("data.n",))])
    as_text = r.mask(configmap({"n": "5"}))
    as_number = r.mask({**configmap({}), "data": {"n": 5}})
    assert as_text is not None and as_number is not None
    assert as_text["data"]["n"] != as_number["data"]["n"]


def test_list_elements_are_named_by_index_globs() -> None:
    r = Redactor("a", [RedactRule(kind="Pod", fields=("spec.containers.*.env",))])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "y"}]}]},
    }
    out = r.mask(pod)
    assert out is not None
    assert is_mask(out["spec"]["containers"][0]["env"])
    assert out["spec"]["containers"][0]["name"] == "a"


def test_a_rule_never_masks_what_names_the_object() -> None:
    r = Redactor("a", [RedactRule(kind="ConfigMap", fields=("metadata.*", "kind"))])
    out = r.mask(configmap({}) | {"metadata": {"name": "cfg", "namespace": "shop", "uid": "u"}})
    assert out is not None
    assert out["kind"] == "ConfigMap"
    assert out["metadata"]["name"] == "cfg" and out["metadata"]["namespace"] == "shop"
    assert is_mask(out["metadata"]["uid"])


def test_an_absent_field_is_no_error() -> None:
    r = Redactor("a", [RedactRule(kind="ConfigMap", fields=("/data/missing", "spec.*.x"))])
    cm = configmap({"k": "v"})
    assert r.mask(cm) == cm


# --- scrub ------------------------------------------------------------------------


def test_scrub_replaces_learned_values_and_their_base64() -> None:
    r = Redactor("shop/app/uid-scrub")
    out = r.mask(secret({"p": "pl41n-s3cret"}))
    assert out is not None
    mask = out["data"]["p"]
    text = f"error: value pl41n-s3cret rejected; data was {b64('pl41n-s3cret')}"
    clean = r.scrub(text)
    assert "pl41n-s3cret" not in clean and b64("pl41n-s3cret") not in clean
    assert clean == f"error: value {mask} rejected; data was {mask}"
    # The process-wide scrub knows it too (the operator's own log lines).
    assert scrub_log(text) == clean


def test_another_apps_redactor_does_not_scrub_a_value_it_never_learned() -> None:
    # The oracle a shared scrub would be: a tenant's pod prints candidate
    # strings and reads, in its own app's logs, which ones are another app's
    # Secret values (and, by the mask, which app's).
    theirs = Redactor("other/victim/uid-v")
    theirs.learn(secret({"p": "victim-pw-31337"}))
    mine = Redactor("tenant/attacker/uid-a")
    printed = "guess victim-pw-31337 guess other-guess"
    assert mine.scrub(printed) == printed
    assert theirs.mask_value("victim-pw-31337") not in mine.scrub(printed)


def test_learn_without_copying_makes_values_scrubbable() -> None:
    r = Redactor("shop/app/uid-learn", [RedactRule(kind="ConfigMap", fields=("data.*token*",))])
    r.learn(configmap({"api-token": "tok-987654"}))
    assert "tok-987654" not in r.scrub("Invalid value: tok-987654")
    assert r.scrub("Invalid value: tok-987654") == "Invalid value: " + r.mask_value("tok-987654")


def test_a_multi_line_value_is_scrubbed_as_a_tool_quotes_it() -> None:
    r = Redactor("a")
    r.learn(secret({"key": "line one\nline two"}))
    assert "line one" not in r.scrub('got "line one\\nline two"')


def test_the_longest_learned_value_wins() -> None:
    r = Redactor("a")
    r.learn(secret({"a": "abcd", "b": "abcdefgh"}))
    assert r.scrub("x abcdefgh y") == f"x {r.mask_value('abcdefgh')} y"
    assert r.scrub("x abcd y") == f"x {r.mask_value('abcd')} y"


def test_short_values_are_not_scrubbed_from_free_text() -> None:
    # "yes" or "1" would turn up in every message, and where its mask appeared
    # would give the value away.
    r = Redactor("a")
    out = r.mask(secret({"flag": "yes"}))
    assert out is not None and is_mask(out["data"]["flag"])
    assert r.scrub("yes, the flag is yes") == "yes, the flag is yes"


def test_binary_data_is_scrubbed_in_its_base64_form() -> None:
    raw = bytes(range(200, 216))
    encoded = base64.b64encode(raw).decode()
    r = Redactor("a")
    r.learn({"apiVersion": "v1", "kind": "Secret", "data": {"bin": encoded}})
    assert encoded not in r.scrub(f"data: {encoded}")


def test_scrub_of_text_without_values_is_the_text() -> None:
    assert Redactor("nothing-learned").scrub("plain text") == "plain text"


def test_the_value_index_is_bounded() -> None:
    index = _ValueIndex(3)
    for v in ("aaaa1", "aaaa2", "aaaa3", "aaaa4"):
        index.add(v, f"<{v}>")
    assert len(index) == 3
    assert index.scrub("aaaa1 aaaa4") == "aaaa1 <aaaa4>", "the oldest value went first"
    assert REGISTRY_SIZE >= 50_000


# --- logs -------------------------------------------------------------------------


def test_the_log_filter_scrubs_final_messages_and_tracebacks() -> None:
    r = Redactor("shop/app/uid-log")
    r.learn(secret({"p": "log-secret-42"}))
    stream = io.StringIO()
    logger = logging.getLogger("gitmoor.test.redact")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        install_log_filter(logger)
        install_log_filter(logger)  # idempotent
        assert len(logger.filters) == 1 and len(handler.filters) == 1
        logger.warning("event=apply_failed error=%s", "value log-secret-42 refused")
        try:
            raise ValueError("log-secret-42")
        except ValueError:
            logger.exception("event=boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "log-secret-42" not in text
    assert f"error=value {r.mask_value('log-secret-42')} refused" in text
    assert "ValueError" in text


def test_the_root_filter_sees_records_of_child_loggers() -> None:
    r = Redactor("shop/app/uid-root")
    r.learn(secret({"p": "root-secret-77"}))
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        install_log_filter()
        logging.getLogger("gitmoor.some.child").error("quoted root-secret-77")
    finally:
        root.removeHandler(handler)
        # The root's filter would outlive this test and scrub every later test's
        # log records of the values learned here ("admin", say).
        for f in [f for f in root.filters if isinstance(f, ScrubFilter)]:
            root.removeFilter(f)
        for h in root.handlers:
            for f in [f for f in h.filters if isinstance(f, ScrubFilter)]:
                h.removeFilter(f)
    assert "root-secret-77" not in stream.getvalue()
    assert r.mask_value("root-secret-77") in stream.getvalue()


@pytest.mark.parametrize("text", ["", "abc", "no values here at all"])
def test_scrub_leaves_text_without_learned_values(text: str) -> None:
    assert scrub_log(text) == text


# --- values that were encrypted in Git, in any kind ---------------------------------

DECRYPTED = "sops-decrypted-pw-5512"


def test_a_decrypted_value_is_masked_in_a_configmap_and_a_custom_resource() -> None:
    # A configMapGenerator fed by an encrypted .env, an encrypted CR: no rule
    # names them, but the render says which values were encrypted.
    r = Redactor("shop/app/uid-sv")
    r.learn_secret_values([DECRYPTED])
    cm = configmap({"DB_PASSWORD": DECRYPTED, "DB_HOST": "db.shop"})
    cr = {
        "apiVersion": "example.com/v1",
        "kind": "Database",
        "metadata": {"name": "main", "annotations": {"note": DECRYPTED}},
        "spec": {"users": [{"name": "app", "password": DECRYPTED}], "port": 5432},
    }
    assert r.covers(cm) and r.covers(cr)
    masked_cm, masked_cr = r.mask(cm), r.mask(cr)
    assert masked_cm is not None and masked_cr is not None
    mask = r.mask_value(DECRYPTED)
    assert masked_cm["data"] == {"DB_PASSWORD": mask, "DB_HOST": "db.shop"}
    assert masked_cr["spec"] == {"users": [{"name": "app", "password": mask}], "port": 5432}
    assert masked_cr["metadata"]["annotations"]["note"] == mask
    assert DECRYPTED not in json.dumps([masked_cm, masked_cr])
    assert cm["data"]["DB_PASSWORD"] == DECRYPTED, "mask copies"
    # Learned for free text too.
    assert r.scrub(f"Invalid value: {DECRYPTED}") == f"Invalid value: {mask}"


def test_a_decrypted_value_never_masks_the_objects_identity() -> None:
    r = Redactor("shop/app/uid-id")
    r.learn_secret_values(["shop", "cfg", "v1", "ConfigMap", "s3cr3t-v4lue"])
    cm = configmap({"k": "s3cr3t-v4lue"})
    out = r.mask(cm)
    assert out is not None
    assert (out["apiVersion"], out["kind"]) == ("v1", "ConfigMap")
    assert out["metadata"] == {"name": "cfg", "namespace": "shop"}
    assert is_mask(out["data"]["k"])


def test_an_object_without_a_decrypted_value_is_not_covered() -> None:
    r = Redactor("shop/app/uid-nc")
    r.learn_secret_values([DECRYPTED])
    cm = configmap({"k": "plain", "n": "sops-decrypted-pw-5512 inside"})
    assert not r.covers(cm), "only equal values: the digest key stays unkeyed for others"
    assert r.mask(cm) == cm
    assert not Redactor("shop/app/uid-none").covers(configmap({"k": DECRYPTED}))


def test_a_decrypted_value_drops_the_last_applied_annotation() -> None:
    r = Redactor("shop/app/uid-la")
    r.learn_secret_values([DECRYPTED])
    cm = configmap({"k": DECRYPTED})
    cm["metadata"]["annotations"] = {LAST_APPLIED: json.dumps({"data": {"k": DECRYPTED}})}
    out = r.mask(cm)
    assert out is not None and "annotations" not in out["metadata"]


def test_a_secret_keeps_its_own_masks_when_its_values_were_decrypted() -> None:
    # The base64 form and the decoded value are both in secret_values; the data
    # value still masks as its decoded bytes, as a stringData value of it does.
    r = Redactor("shop/app/uid-sec")
    r.learn_secret_values([DECRYPTED, b64(DECRYPTED)])
    out = r.mask(secret({"p": DECRYPTED}))
    string_out = r.mask(secret(stringData={"p": DECRYPTED}))
    assert out is not None and string_out is not None
    assert out["data"]["p"] == string_out["stringData"]["p"] == r.mask_value(DECRYPTED)


def test_a_changed_decrypted_value_still_shows_as_changed() -> None:
    r = Redactor("shop/app/uid-ch")
    r.learn_secret_values([DECRYPTED, "sops-rotated-pw-7781"])
    old, new = r.mask(configmap({"k": DECRYPTED})), r.mask(configmap({"k": "sops-rotated-pw-7781"}))
    assert old is not None and new is not None
    assert old["data"]["k"] != new["data"]["k"]


def test_a_decrypted_value_that_equals_a_label_leaves_the_label_readable() -> None:
    # An app's name used as its database user: the label still says what the
    # object is (selectors copy it); the Secret's value is masked as ever.
    r = Redactor("shop/db/uid")
    r.learn_secret_values(["payments"])
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app.kubernetes.io/name": "payments"}},
        "data": {"user": "payments"},
    }
    out = r.mask(cm)
    assert out is not None
    assert out["metadata"]["labels"] == {"app.kubernetes.io/name": "payments"}
    assert out["data"] == {"user": r.mask_value("payments")}
