from gitmoor.model.jsondata import copy_json


def test_a_copy_shares_nothing_a_caller_could_change() -> None:
    shared = {"app": "web"}
    obj = {"metadata": {"labels": shared, "annotations": shared}, "items": [[1, 2.5], None, True]}
    copied = copy_json(obj)
    assert copied == obj
    copied["metadata"]["labels"]["app"] = "changed"
    copied["items"][0].append(3)
    assert obj == {
        "metadata": {"labels": {"app": "web"}, "annotations": {"app": "web"}},
        "items": [[1, 2.5], None, True],
    }
    # A YAML alias (one dict, two uses) becomes two: a change to one use (prepare
    # adding a label) no longer shows in the other.
    assert copied["metadata"]["annotations"] == {"app": "web"}


def test_values_json_cannot_hold_are_deep_copied() -> None:
    # !!binary and !!set load as bytes and a set; they are copied, not shared.
    obj = {"data": bytearray(b"x"), "tags": {"a"}}
    copied = copy_json(obj)
    assert copied == obj
    assert copied["data"] is not obj["data"]
    assert copied["tags"] is not obj["tags"]
