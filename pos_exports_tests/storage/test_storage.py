"""Local and S3 storage (moto's standalone server over HTTP) behave the same."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from pos_exports.archive.extract import archive_business_day
from pos_exports.archive.read import read_table, table_file
from pos_exports.archive.tables import DATASETS
from pos_exports.periods import day_window
from pos_exports.source.database import connect, list_businesses
from pos_exports.storage import open_storage
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import load_sqlite


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    return open_storage(request.getfixturevalue("s3_storage_url"))


def test_put_read_list_delete(storage):
    storage.write_bytes("a/b/one.txt", b"1")
    storage.write_bytes("a/two.txt", b"22")
    assert storage.read_bytes("a/b/one.txt") == b"1"
    assert storage.exists("a/two.txt") and not storage.exists("a/three.txt")
    assert storage.size("a/two.txt") == 2
    assert storage.list("a") == ["a/b/one.txt", "a/two.txt"]
    with storage.local_copy("a/two.txt") as path:
        assert path.read_bytes() == b"22"
    storage.delete("a/two.txt")
    assert storage.list("a") == ["a/b/one.txt"]


def test_failed_write_publishes_nothing(storage):
    with pytest.raises(RuntimeError):
        with storage.staged("x/half.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert not storage.exists("x/half.bin") and storage.list("x") == []


def test_a_folder_removed_after_a_write_is_made_again_by_the_next(storage):
    # a local storage makes and sweeps each folder on its first write only: a folder removed since is made again
    storage.write_bytes("gone/one.txt", b"1")
    storage.delete("gone/one.txt")
    if isinstance(storage, LocalStorage):
        storage.path("gone").rmdir()
    with storage.staged("gone/two.txt") as tmp:
        tmp.write_bytes(b"2")
        other = storage.staged("gone/three.txt")
        assert other.__enter__() != tmp  # two temporary files of one process in one folder: two names
        other.__exit__(None, None, None)
    assert storage.list("gone") == ["gone/three.txt", "gone/two.txt"]
    assert storage.read_bytes("gone/two.txt") == b"2"


def test_archive_on_s3_equals_local(tmp_path, s3_storage_url):
    url = load_sqlite(tmp_path / "pos.sqlite")
    local, s3 = LocalStorage(tmp_path / "store"), open_storage(s3_storage_url)
    day = dt.date(2025, 3, 9)
    with connect(url) as reader:
        business = list_businesses(reader)[0]
        now = day_window(day, business.timezone).end + dt.timedelta(hours=1)
        for store in (local, s3):
            archive_business_day(reader, store, DATASETS["sales"], business, day, now=now)
    keys = {store: table_file(store, "sales", business.id, day, "sale_items") for store in (local, s3)}
    assert s3.read_bytes(keys[s3]) == local.read_bytes(keys[local])
    assert read_table(s3, "sales", "sale_items", business.id, [day]) == read_table(
        local, "sales", "sale_items", business.id, [day]
    )
    same_layout = [re.sub(r"gen=[^/]+", "gen=G", k) for k in local.list("archive")]
    assert (
        s3.uri(keys[s3]).startswith("s3://")
        and [re.sub(r"gen=[^/]+", "gen=G", k) for k in s3.list("archive")] == same_layout
    )
