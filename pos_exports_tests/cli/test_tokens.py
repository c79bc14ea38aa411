"""`pos-exports tokens`: a token's creation and revocation are stamped with the CLI's one time (`--now`)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pos_exports.cli import main
from pos_exports.state import api_tokens, engine


def test_tokens_are_created_and_revoked_at_the_clis_now(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    assert main(["--now", "2025-03-10T06:00:00+00:00", "tokens", "create", "--business", "1"]) == 0
    assert "token 1 (business 1): pxt_" in capsys.readouterr().out
    assert main(["--now", "2025-03-11T07:30:00+00:00", "tokens", "revoke", "1"]) == 0
    with engine(url).connect() as conn:
        row = conn.execute(sa.select(api_tokens)).one()
    utc = [t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t for t in (row.created_at, row.revoked_at)]
    assert utc == [dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC), dt.datetime(2025, 3, 11, 7, 30, tzinfo=dt.UTC)]
