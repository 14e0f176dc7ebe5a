"""Which entries of a decryption Secret are age keys (Flux's ``.agekey`` suffix)."""

from __future__ import annotations

import base64

from gitmoor.secrets.agekeys import generate
from gitmoor.settings.decryption import keys_from_secret

KEY_A = generate().identity
KEY_B = generate().identity


def _secret(**entries: str) -> dict[str, object]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in entries.items()}}


def test_every_agekey_entry_and_line_is_a_key_comments_and_other_entries_are_not() -> None:
    keys = keys_from_secret(
        _secret(
            **{
                "old.agekey": f"# created: 2026-01-01\n# public key: age1x\n{KEY_A}\n",
                "new.agekey": KEY_B,
                "README": "not a key",
            }
        ),
        "apps/sops-age",
    )
    assert keys.age == (KEY_B, KEY_A)  # entries in name order
    assert keys.missing == ""
    assert KEY_A not in repr(keys)


def test_a_secret_without_age_keys_says_why_and_names_unsupported_types() -> None:
    keys = keys_from_secret(
        _secret(
            **{
                "team.asc": "-----BEGIN PGP PRIVATE KEY BLOCK-----",
                "x.agekey": "AGE-PLUGIN-YUBIKEY-1Q",
            }
        ),
        "apps/sops-age",
    )
    assert keys.age == ()
    assert keys.missing == (
        "the Secret apps/sops-age holds no age private key (an entry NAME.agekey); "
        "unsupported key type: team.asc (PGP), x.agekey (not an age X25519 key)"
    )


def test_a_malformed_key_is_left_out_and_said_the_others_are_kept() -> None:
    # sops refuses every key given with one it cannot parse: the bad one goes.
    broken = KEY_A[:-4] + "QQQQ"
    keys = keys_from_secret(_secret(**{"a.agekey": f"{broken}\n{KEY_B}\n"}), "apps/s")
    assert keys.age == (KEY_B,)
    only_broken = keys_from_secret(_secret(**{"a.agekey": broken}), "apps/s")
    assert only_broken.age == ()
    assert "a.agekey (a malformed AGE-SECRET-KEY-1 line, left out)" in only_broken.missing


def test_the_fingerprint_changes_with_the_keys_and_does_not_hold_them() -> None:
    a = keys_from_secret(_secret(**{"k.agekey": KEY_A}), "apps/s")
    b = keys_from_secret(_secret(**{"k.agekey": KEY_B}), "apps/s")
    assert a.fingerprint() != b.fingerprint()
    assert KEY_A not in a.fingerprint()
