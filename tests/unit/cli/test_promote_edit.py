"""The file edits of `gitmoor promote`, on plain text: only the promoted values'
lines change, comments and order stay; shapes the line editor cannot handle are
re-dumped, and the result always parses to the intended data."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from gitmoor.cli.promote_cmd import promote_images, promote_values
from gitmoor.model import UserInputError


def _t(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


SOURCE = _t(
    """
    images:
    - name: nginx
      newTag: "1.28"
    - name: ghcr.io/acme/api
      newName: registry.acme.io/api
      digest: sha256:abc
    """
)


def test_only_the_tag_line_changes_and_its_comment_stays() -> None:
    target = _t(
        """
        # prod
        resources:
        - ../../base
        images:
          # pinned by the release team
          - name: nginx
            newTag: 1.27 # current
          - name: ghcr.io/acme/api
            newName: registry.acme.io/api
            digest: sha256:abc
        namePrefix: prod-
        """
    )

    edit = promote_images(SOURCE, target, source="s", target="t")

    assert edit.method == "lines"
    assert edit.changes == ["image nginx: newTag=1.27 -> newTag=1.28"]
    assert edit.after == target.replace("newTag: 1.27 # current", "newTag: '1.28' # current")


def test_missing_fields_and_entries_are_added_and_stale_ones_removed() -> None:
    target = _t(
        """
        images:
        - name: ghcr.io/acme/api
          newTag: v1   # before digests
        resources:
        - base
        """
    )

    edit = promote_images(SOURCE, target, source="s", target="t")

    assert edit.method == "lines"
    assert yaml.safe_load(edit.after) == {
        "images": [
            {"name": "ghcr.io/acme/api", "newName": "registry.acme.io/api", "digest": "sha256:abc"},
            {"name": "nginx", "newTag": "1.28"},
        ],
        "resources": ["base"],
    }
    assert edit.after.endswith("resources:\n- base\n")


def test_a_kustomization_without_images_gets_the_block_appended() -> None:
    target = "# prod\nresources:\n- ../../base\n"

    edit = promote_images(SOURCE, target, source="s", target="t")

    assert edit.after.startswith(target)
    assert yaml.safe_load(edit.after)["images"][0] == {"name": "nginx", "newTag": "1.28"}


def test_flow_style_is_re_dumped_to_the_same_data() -> None:
    target = "images: [{name: nginx, newTag: '1.27'}]\nresources: [base]\n"

    edit = promote_images(SOURCE, target, source="s", target="t")

    assert edit.method == "re-dump"
    assert yaml.safe_load(edit.after)["images"][0] == {"name": "nginx", "newTag": "1.28"}
    assert yaml.safe_load(edit.after)["resources"] == ["base"]


def test_equal_images_are_nothing_to_promote() -> None:
    edit = promote_images(SOURCE, SOURCE, source="s", target="t")

    assert edit.changes == [] and edit.after == SOURCE


def test_helm_values_by_dotted_key_keep_the_rest_of_the_file() -> None:
    source = _t(
        """
        image:
          repository: nginx
          tag: "1.28"
        replicaCount: 2
        """
    )
    target = _t(
        """
        # prod values
        image:
          repository: nginx   # mirrored
          tag: "1.27"         # prod's tag
        replicaCount: 5
        ingress:
          tag: keep-me
        """
    )

    edit = promote_values(source, target, ["image.tag"], source="s", target="t")

    assert edit.method == "lines"
    assert edit.changes == ["value image.tag: '1.27' -> '1.28'"]
    assert edit.after == target.replace('tag: "1.27"         #', "tag: '1.28'         #")


def test_a_value_missing_in_the_target_is_added_by_re_dump() -> None:
    edit = promote_values("a:\n  b: 1\n", "c: 2\n", ["a.b"], source="s", target="t")

    assert edit.method == "re-dump"
    assert yaml.safe_load(edit.after) == {"c": 2, "a": {"b": 1}}


def test_a_key_missing_in_the_source_is_an_error() -> None:
    with pytest.raises(UserInputError, match=r"s has no value image\.tag"):
        promote_values("image: {}\n", "image:\n  tag: x\n", ["image.tag"], source="s", target="t")
