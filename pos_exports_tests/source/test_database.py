"""Bad source configuration gets a clear error; the source is read-only."""

from __future__ import annotations

import pytest

from pos_exports.source.database import PosSourceError, connect, parse_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secret@h/db", "not supported"),
        ("not a url", "not supported"),
        ("", "not supported"),
        ("postgresql://u:secret@/", "incomplete"),
        ("sqlite:///", "names no SQLite file"),
    ],
)
def test_malformed_url_is_refused_with_a_clear_message(url, message):
    with pytest.raises(PosSourceError, match=message) as err:
        parse_url(url)
    assert "secret" not in str(err.value)


def test_unreachable_postgres_names_the_server_without_the_password():
    with pytest.raises(PosSourceError, match="cannot connect to the POS database") as err:
        with connect("postgresql://pos:hunter2@127.0.0.1:1/pos?connect_timeout=2"):
            pass
    assert "hunter2" not in str(err.value) and "127.0.0.1:1" in str(err.value)


def test_missing_sqlite_file_is_refused(tmp_path):
    with pytest.raises(PosSourceError, match="does not exist"):
        with connect(f"sqlite:///{tmp_path / 'nope.db'}"):
            pass


def test_database_without_pos_tables_is_refused(tmp_path):
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(PosSourceError, match="not a POS database: missing table"):
        with connect(f"sqlite:///{tmp_path / 'empty.db'}"):
            pass


def test_postgres_session_is_read_only(fixture_db):
    with connect(fixture_db) as reader:
        if reader.dialect.name == "postgresql":
            with pytest.raises(Exception, match="read-only"):
                reader.rows("DELETE FROM sales RETURNING id")
        else:
            with pytest.raises(Exception, match="readonly"):
                reader.rows("DELETE FROM sales")


def test_rows_stream_in_batches(fixture_db, monkeypatch):
    from pos_exports.source import database

    monkeypatch.setattr(database, "SQLITE_BATCH_ROWS", 2)
    with connect(fixture_db) as reader:
        batches = list(reader.batches("SELECT id FROM sale_items ORDER BY id"))
    assert sum(b.num_rows for b in batches) == 13
    if "sqlite" in fixture_db:
        assert max(b.num_rows for b in batches) == 2
