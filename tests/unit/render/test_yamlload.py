import pytest

from gitmoor.model import UserInputError
from gitmoor.render.yamlload import load_documents


def test_duplicate_key_names_file_and_both_lines() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"
    with pytest.raises(UserInputError, match="duplicate key 'name'") as err:
        load_documents(text, where="apps/cm.yaml")
    assert str(err.value).startswith("apps/cm.yaml:5:")
    assert "first defined on line 4" in str(err.value)


def test_duplicate_key_in_flow_mapping_is_refused() -> None:
    with pytest.raises(UserInputError, match="duplicate key 'a'"):
        load_documents('{"a": 1, "a": 2}', where="x.json")


def test_keys_from_a_merge_may_be_overridden() -> None:
    text = "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  x: 3\n"
    [doc] = load_documents(text, where="f.yaml")
    assert doc.data["thing"] == {"x": 3, "y": 2}


def test_syntax_error_names_file_and_line() -> None:
    text = "a: 1\nb: [1,\nc: 3\n"
    with pytest.raises(UserInputError, match="invalid YAML") as err:
        load_documents(text, where="apps/broken.yaml")
    assert err.value.concerns is not None
    file, line = err.value.concerns.split(":")
    assert file == "apps/broken.yaml"
    assert 2 <= int(line) <= 4


def test_control_character_names_its_line() -> None:
    with pytest.raises(UserInputError) as err:
        load_documents("a: 1\nb: \x07\n", where="f.yaml")
    assert err.value.concerns == "f.yaml:2"


def test_documents_keep_their_start_line_and_empty_ones_are_dropped() -> None:
    text = "---\n# only a comment\n---\na: 1\n---\n---\n\nb: 2\n"
    docs = load_documents(text, where="f.yaml")
    assert [(d.line, d.data) for d in docs] == [(4, {"a": 1}), (8, {"b": 2})]


def test_values_are_what_json_would_hold() -> None:
    # Dates stay strings and keys become strings, as when Kubernetes decodes
    # YAML into JSON; 1 and true must not fold into one key on the way.
    [doc] = load_documents("when: 2024-01-31\n1: one\ntrue: yes-string\n", where="f")
    assert doc.data == {"when": "2024-01-31", "1": "one", "true": "yes-string"}


def test_python_tags_are_refused() -> None:
    with pytest.raises(UserInputError):
        load_documents("a: !!python/object/apply:os.system ['true']\n", where="f.yaml")


def test_scalars_keep_yaml_core_types() -> None:
    # What a manifest means: replicas is a number, "012" and 'yes' stay strings.
    text = "a: 3\nb: 2.5\nc: true\nd: null\ne: '012'\nf: 'yes'\ng: [1, x, {h: false}]\n"
    [doc] = load_documents(text, where="f.yaml")
    assert doc.data == {
        "a": 3,
        "b": 2.5,
        "c": True,
        "d": None,
        "e": "012",
        "f": "yes",
        "g": [1, "x", {"h": False}],
    }


def test_each_mapping_knows_its_own_line() -> None:
    # kind: List items are reported at their own line, not the list's.
    text = "kind: List\nitems:\n- kind: ConfigMap\n  metadata: {name: a}\n- kind: Secret\n"
    [doc] = load_documents(text, where="f.yaml")
    first, second = doc.data["items"]
    assert [doc.line_of(doc.data), doc.line_of(first), doc.line_of(second)] == [1, 3, 5]
    assert doc.line_of(first["metadata"]) == 4


def test_a_duplicate_key_is_named_before_a_refused_value() -> None:
    text = "a: !!python/name:os.system\nb: 1\nb: 2\n"
    with pytest.raises(UserInputError, match="duplicate key 'b'") as err:
        load_documents(text, where="f.yaml")
    assert err.value.concerns == "f.yaml:3"


def test_an_alias_reads_as_its_anchor() -> None:
    text = "base: &b {x: 1, y: [a]}\nthing: *b\nmerged:\n  <<: *b\n  x: 2\n"
    [doc] = load_documents(text, where="f.yaml")
    assert doc.data["thing"] == {"x": 1, "y": ["a"]}
    assert doc.data["merged"] == {"x": 2, "y": ["a"]}
