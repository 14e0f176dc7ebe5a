"""Which entries of a decryption Secret are age keys (Flux's ``.agekey`` suffix)."""

from __future__ import annotations

import base64

from gitmoor.settings.decryption import keys_from_secret

KEY_A = "AGE-SECRET-KEY-1" + "Q" * 58
KEY_B = "AGE-SECRET-KEY-1" + "P" * 58


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


def test_the_fingerprint_changes_with_the_keys_and_does_not_hold_them() -> None:
    a = keys_from_secret(_secret(**{"k.agekey": KEY_A}), "apps/s")
    b = keys_from_secret(_secret(**{"k.agekey": KEY_B}), "apps/s")
    assert a.fingerprint() != b.fingerprint()
    assert KEY_A not in a.fingerprint()
