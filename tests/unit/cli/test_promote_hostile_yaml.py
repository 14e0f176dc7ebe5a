"""`gitmoor promote` reads the source and target files with the render's hardened
YAML loader: anyone who can push to the source path writes them, so an alias
bomb or a duplicate key must be refused, naming the file, before the edit
compares, prints or dumps their data."""

from __future__ import annotations

import pytest

from gitmoor.cli.promote_cmd import promote_images, promote_values
from gitmoor.model import UserInputError

TARGET = "images:\n- name: nginx\n  newTag: '1.27'\n"


def _bomb(levels: int) -> str:
    """An images: entry whose newTag expands to 9**levels strings through aliases."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines += ["images:", "- name: nginx", f"  newTag: *a{levels}"]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_in_the_source_kustomization_is_refused() -> None:
    with pytest.raises(UserInputError, match=r"apps/test/kustomization\.yaml"):
        promote_images(
            _bomb(6), TARGET, source="apps/test/kustomization.yaml", target="apps/prod/k.yaml"
        )


def test_an_alias_bomb_in_the_source_values_is_refused() -> None:
    source = _bomb(6).replace("images:\n- name: nginx\n  newTag:", "image:\n  tag:")
    with pytest.raises(UserInputError, match=r"apps/test/values\.yaml"):
        promote_values(
            source,
            "image:\n  tag: x\n",
            ["image.tag"],
            source="apps/test/values.yaml",
            target="apps/prod/values.yaml",
        )


def test_a_duplicate_key_is_refused_not_read_as_the_last_one() -> None:
    # PyYAML keeps the last of two equal keys; kustomize's decoder refuses the
    # file, so promoting "1.29" would copy a tag the source env never runs.
    source = "images:\n- name: nginx\n  newTag: '1.28'\n  newTag: '1.29'\n"
    with pytest.raises(UserInputError, match="duplicate"):
        promote_images(source, TARGET, source="s/kustomization.yaml", target="t/k.yaml")
