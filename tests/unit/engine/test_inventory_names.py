"""Names and labels of inventory ConfigMaps stay valid for any valid app name."""

from __future__ import annotations

import re

import pytest

from gitmoor.engine.inventory import chunk_name, owner_label

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def test_a_short_name_is_spelt_out() -> None:
    assert chunk_name("guestbook", "resources", 3, 0) == "guestbook-inv-resources-3-0"
    assert owner_label("guestbook") == "guestbook"


@pytest.mark.parametrize(
    "app",
    [
        "a" * 253,
        "team." + "b" * 230 + ".x",
        # a cut that would end on "." or "-" must not leave it before the hash
        "c" * 206 + "." + "d" * 46,
        "e" * 45 + "-" + "f" * 100,
    ],
)
def test_long_names_are_cut_and_hashed_into_valid_names(app: str) -> None:
    name = chunk_name(app, "operation", 12345678901, 42)
    assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), name
    assert name.endswith("-inv-operation-12345678901-42")
    label = owner_label(app)
    assert len(label) <= 63 and LABEL_VALUE.match(label), label


def test_long_names_that_share_a_prefix_stay_apart() -> None:
    a, b = "x" * 240 + "-a", "x" * 240 + "-b"
    assert chunk_name(a, "resources", 1, 0) != chunk_name(b, "resources", 1, 0)
    assert owner_label(a) != owner_label(b)
