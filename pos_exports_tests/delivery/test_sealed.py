"""Stored secrets sealed with POS_EXPORTS_SECRET_KEY: opened only with a configured key, tamper refused, rotation."""

from __future__ import annotations

import pytest

from pos_exports.delivery import sealed

KEY_1 = "k1-" + "a" * 40
KEY_2 = "k2-" + "b" * 40


def test_a_sealed_secret_opens_with_its_key_and_does_not_show_in_the_stored_text(monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_SECRET_KEY", KEY_1)
    stored = sealed.seal("Tr0ub4dor&3")
    assert stored.startswith(sealed.PREFIX) and "Tr0ub4dor" not in stored
    assert sealed.unseal(stored) == "Tr0ub4dor&3"
    assert sealed.seal("Tr0ub4dor&3") != stored  # a fresh IV each time: equal secrets do not look equal


def test_a_tampered_value_or_another_key_is_refused_with_a_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_SECRET_KEY", KEY_1)
    stored = sealed.seal("s3cret")
    body = stored[len(sealed.PREFIX) :]
    flipped = sealed.PREFIX + body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    with pytest.raises(sealed.SealError, match="POS_EXPORTS_SECRET_KEY"):
        sealed.unseal(flipped)
    monkeypatch.setenv("POS_EXPORTS_SECRET_KEY", KEY_2)
    with pytest.raises(sealed.SealError, match="POS_EXPORTS_SECRET_KEY"):
        sealed.unseal(stored)
    with pytest.raises(sealed.SealError, match="not a sealed value"):
        sealed.unseal("s3cret")


def test_rotation_opens_values_of_the_earlier_key_and_reseals_them_with_the_new(monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_SECRET_KEY", KEY_1)
    old = sealed.seal("s3cret")
    monkeypatch.setenv("POS_EXPORTS_SECRET_KEY", f"{KEY_2},{KEY_1}")
    assert sealed.unseal(old) == "s3cret"
    new = sealed.reseal(old)
    monkeypatch.setenv("POS_EXPORTS_SECRET_KEY", KEY_2)
    assert sealed.unseal(new) == "s3cret"
    with pytest.raises(sealed.SealError):
        sealed.unseal(old)


def test_without_a_key_nothing_is_sealed(monkeypatch):
    monkeypatch.delenv("POS_EXPORTS_SECRET_KEY", raising=False)
    with pytest.raises(sealed.SealError, match="POS_EXPORTS_SECRET_KEY is not set"):
        sealed.seal("s3cret")
