"""The emailed links against a real server: a real delivery run emails the real SMTP test server (aiosmtpd), the
links router is served by uvicorn on 127.0.0.1, and httpx follows the links over the socket."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import secrets
import zipfile
from urllib.parse import parse_qs, unquote, urlsplit

import fastapi
import httpx
import pytest

from pos_exports.core.clock import utc_now
from pos_exports.defs.deliveries import delivery_job
from pos_exports.defs.resources import ClockResource, StorageResource
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.links import DOWNLOAD, UNSUBSCRIBE, sign
from pos_exports.operations.cleanup import cleanup_exports
from pos_exports.service import links
from pos_exports.service.app import create_app
from pos_exports.service.limits import FailedAttempts
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.exports.names import export_files
from pos_exports_tests.service.conftest import serving

UTC = dt.UTC
WEEK = "2025-03-03"
OWNER = "owner@accra.example"
TEAM = "data-team@pos.example"
NAMES = export_files(["sales"], ["xlsx", "csv"])


def create_links_app() -> fastapi.FastAPI:
    """Only for the tests: the service's app is `pos_exports.service`'s; this serves the links router alone."""
    app = fastapi.FastAPI()
    app.include_router(links.router)
    failures = FailedAttempts(10)  # this app's own, not the process's: tests do not add up
    app.dependency_overrides[links.failed_attempts] = lambda: failures
    return app


class Recorder(logging.Handler):
    """Every log record of the process while the test runs (pytest's logging plugin is off: `-p no:logging`)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs():
    recorder = Recorder()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.access", "uvicorn.error", "dagster")]
    for logger in loggers:
        logger.addHandler(recorder)
    yield recorder
    for logger in loggers:
        logger.removeHandler(recorder)


@pytest.fixture
def server():
    """uvicorn serving the links router on 127.0.0.1 (a port of its own), in a thread; yields its base URL."""
    with serving(create_links_app()) as base:
        yield base


CREATED = dt.datetime(2025, 3, 1, tzinfo=UTC)  # the subscription exists before the week it delivers


def _deliver(eng, root, formats: list[str]):
    """A weekly sales subscription of business 1 to OWNER, delivered for WEEK by a real delivery run."""
    sub = subscriptions.add(
        eng,
        {
            "business_id": 1,
            "name": "Weekly sales",
            "datasets": ["sales"],
            "formats": formats,
            "frequency": "weekly",
            "day_of_week": "monday",
            "at": "07:00",
            "recipients": [OWNER],
        },
        now=CREATED,
    )
    config = {"subscription_id": sub.id, "period_kind": "weekly", "period_key": WEEK}
    result = delivery_job.execute_in_process(
        run_config={"ops": {"deliver_subscription": {"config": config}}},
        resources={"storage": StorageResource(root=str(root)), "clock": ClockResource()},
    )
    assert result.success
    return sub, result


@pytest.fixture
def linked(archived_root, server, smtp_server, logs, tmp_path, monkeypatch):
    """Business 1's week delivered by a real delivery run, with the service's public URL configured."""
    secret = secrets.token_hex(32)
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_STORAGE", str(archived_root))
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url(query="from=exports@pos.example"))
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", TEAM)
    monkeypatch.setenv("POS_EXPORTS_PUBLIC_URL", server)
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", secret)
    eng = engine()
    sub, result = _deliver(eng, archived_root, ["xlsx", "csv"])
    [received] = smtp_server.handler.delivered_to(OWNER)
    return {"sub": sub, "eng": eng, "secret": secret, "message": received.message, "raw": received.data, "run": result}


def _bodies(message) -> tuple[str, str]:
    return (
        message.get_body(preferencelist=("plain",)).get_content(),
        message.get_body(preferencelist=("html",)).get_content(),
    )


def _attached(message) -> dict[str, bytes]:
    """The stored file names' bytes as emailed (the CSV tables out of their zip)."""
    parts = {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}
    out = {"sales.xlsx": parts[f"accra-shop_sales_{WEEK}.xlsx"]}
    with zipfile.ZipFile(io.BytesIO(parts[f"accra-shop_sales_{WEEK}.csv.zip"])) as archive:
        for member in archive.infolist():  # accra-shop_sales-summary_2025-03-03.csv -> sales-summary.csv
            out[member.filename.removeprefix("accra-shop_").replace(f"_{WEEK}", "")] = archive.read(member)
    return out


def test_the_email_carries_a_download_link_and_one_click_unsubscribe(linked, server):
    message = linked["message"]
    header = str(message["List-Unsubscribe"])
    one_click, mailto = re.fullmatch(r"<([^>]+)>, <([^>]+)>", header).groups()
    assert one_click.startswith(f"{server}/links/unsubscribe/")
    assert mailto.startswith(f"mailto:{TEAM}?subject=") and "Unsubscribe subscription" in unquote(mailto)  # kept
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = _bodies(message)
    [download] = re.findall(rf"{re.escape(server)}/links/download/[A-Za-z0-9_.-]+", text)
    assert f'href="{download}"' in html and f'href="{one_click}"' in html and one_click in text
    assert "Download them (link valid until 2025-" not in text  # valid from the day it was sent, not the period
    assert re.search(r"link valid until \d{4}-\d\d-\d\d \(UTC\)", text)


def test_the_download_link_serves_the_emailed_files_also_after_cleanup(linked, server, archived_root):
    text, _ = _bodies(linked["message"])
    [download] = re.findall(rf"{re.escape(server)}/links/download/[A-Za-z0-9_.-]+", text)
    emailed = _attached(linked["message"])
    assert set(emailed) == NAMES
    before = httpx.get(download, timeout=60)
    assert before.status_code == 200 and before.headers["content-type"] == "application/zip"
    assert f"accra-shop_files_{WEEK}.zip" in before.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(before.content)) as archive:
        assert {m.filename: archive.read(m) for m in archive.infolist()} == emailed
    report = cleanup_exports(LocalStorage(archived_root), dt.date(2025, 6, 1), max_age_days=30, dry_run=False)
    assert report.folders == [f"exports/1/weekly/{WEEK}"] and not (archived_root / "exports/1").exists()
    after = httpx.get(download, timeout=60)  # rendered again from the archive, SHA-256 checked against the ledger
    assert after.status_code == 200 and after.content == before.content


def test_the_apis_download_renders_a_file_cleanup_deleted_again_with_the_emailed_sha256(linked, archived_root):
    from pos_exports.operations import tokens

    eng = linked["eng"]
    [row] = ledger.history(eng, subscription_id=linked["sub"].id)
    emailed = {f["name"]: f["sha256"] for f in row["files"]}
    cleanup_exports(LocalStorage(archived_root), dt.date(2025, 6, 1), max_age_days=30, dry_run=False)
    assert not (archived_root / "exports/1").exists()
    _, secret = tokens.create(eng, 1, now=utc_now())
    with serving(create_app(str(eng.url), LocalStorage(archived_root))) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}) as client:
            got = {name: client.get(f"/businesses/1/deliveries/{row['id']}/files/{name}") for name in emailed}
    assert {name: r.status_code for name, r in got.items()} == dict.fromkeys(emailed, 200)
    assert {name: hashlib.sha256(r.content).hexdigest() for name, r in got.items()} == emailed
    assert not (archived_root / "exports/1").exists()  # served, not put back into storage


def test_post_with_the_signed_token_pauses_the_subscription(linked, server):
    one_click = re.match(r"<([^>]+)>", str(linked["message"]["List-Unsubscribe"])).group(1)
    page = httpx.get(one_click)  # a mail scanner following the link pauses nothing
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert subscriptions.get(linked["eng"], linked["sub"].id).is_active
    answer = httpx.post(one_click, data={"List-Unsubscribe": "One-Click"})  # as RFC 8058 mail clients post it
    assert answer.status_code == 200 and answer.text == '"Weekly sales" is paused: no more emails of it will be sent\n'
    assert not subscriptions.get(linked["eng"], linked["sub"].id).is_active
    assert httpx.post(one_click).status_code == 200  # a second click changes nothing
    assert not subscriptions.get(linked["eng"], linked["sub"].id).is_active


def test_a_tampered_expired_or_misused_token_is_refused(linked, server):
    eng, sub = linked["eng"], linked["sub"]
    one_click = re.match(r"<([^>]+)>", str(linked["message"]["List-Unsubscribe"])).group(1)
    token = one_click.rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    answer = httpx.post(f"{server}/links/unsubscribe/{tampered}")
    assert answer.status_code == 400 and answer.text == "this unsubscribe link is not valid (altered or incomplete)\n"
    long_ago = dt.datetime(2025, 1, 1, tzinfo=UTC)
    expired = sign(UNSUBSCRIBE, sub.id, OWNER, long_ago, days=30, secret=linked["secret"])
    answer = httpx.post(f"{server}/links/unsubscribe/{expired}")
    assert answer.status_code == 410 and answer.text == "this unsubscribe link expired on 2025-01-31 00:00 UTC\n"
    row = ledger.history(eng, subscription_id=sub.id)[0]
    download = sign(DOWNLOAD, row["id"], OWNER, dt.datetime.now(UTC), secret=linked["secret"])
    assert httpx.post(f"{server}/links/unsubscribe/{download}").status_code == 400  # a download token never pauses
    forged = sign(UNSUBSCRIBE, sub.id, OWNER, dt.datetime.now(UTC), secret="x" * 64)  # signed with another secret
    assert httpx.post(f"{server}/links/unsubscribe/{forged}").status_code == 400
    other = sign(DOWNLOAD, row["id"], "someone@else.example", dt.datetime.now(UTC), secret=linked["secret"])
    answer = httpx.get(f"{server}/links/download/{other}")  # a row opens only for its own recipient
    assert answer.status_code == 404 and answer.text == "this export is no longer known\n"
    assert httpx.get(f"{server}/links/download/{tampered}").status_code == 400
    assert subscriptions.get(eng, sub.id).is_active  # nothing refused paused anything


def test_the_link_secret_is_in_no_email_log_or_ledger_row(linked, server, logs):
    secret = linked["secret"]
    text, _ = _bodies(linked["message"])
    [download] = re.findall(rf"{re.escape(server)}/links/download/[A-Za-z0-9_.-]+", text)
    assert httpx.get(download, timeout=60).status_code == 200
    assert httpx.post(f"{server}/links/unsubscribe/not-a-token").status_code == 400
    assert any("/links/download/" in line for line in logs.lines)  # uvicorn's access log was recorded
    assert logs.lines and not any(secret in line for line in logs.lines)
    assert secret.encode() not in linked["raw"]
    events = [str(e) for e in linked["run"].all_events]
    assert events and not any(secret in e for e in events)
    assert not any(secret in str(row) for row in ledger.history(linked["eng"]))


def test_without_a_public_url_the_email_has_no_links(archived_root, smtp_server, tmp_path, monkeypatch):
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url())
    monkeypatch.setenv("POS_EXPORTS_DATA_TEAM_EMAIL", TEAM)
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", secrets.token_hex(32))  # a secret alone adds no link
    _deliver(engine(), archived_root, ["csv"])
    [received] = smtp_server.handler.delivered_to(OWNER)
    message = received.message
    assert re.fullmatch(r"<mailto:[^>]+>", str(message["List-Unsubscribe"]))  # as before: the mailto alone
    assert message["List-Unsubscribe-Post"] is None
    assert "/links/" not in "".join(_bodies(message)) and "link valid until" not in "".join(_bodies(message))


def test_a_single_file_on_s3_is_a_short_lived_presigned_redirect(
    s3_storage_url, server, smtp_server, tmp_path, monkeypatch
):
    from pos_exports.storage import open_storage
    from pos_exports_tests.exports.conftest import archive_week
    from pos_exports_tests.fixtures import load_sqlite

    storage = open_storage(s3_storage_url)
    archive_week(load_sqlite(tmp_path / "pos.sqlite"), storage)
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("POS_EXPORTS_STORAGE", s3_storage_url)
    monkeypatch.setenv("POS_EXPORTS_SMTP_URL", smtp_server.url())
    monkeypatch.setenv("POS_EXPORTS_PUBLIC_URL", server)
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", secrets.token_hex(32))
    _deliver(engine(), s3_storage_url, ["xlsx"])
    [received] = smtp_server.handler.delivered_to(OWNER)
    text, _ = _bodies(received.message)
    [download] = re.findall(rf"{re.escape(server)}/links/download/[A-Za-z0-9_.-]+", text)
    asked = dt.datetime.now(UTC).timestamp()
    answer = httpx.get(download, timeout=60)
    assert answer.status_code == 307
    expires = int(parse_qs(urlsplit(answer.headers["location"]).query)["Expires"][0])
    assert asked + 290 <= expires <= dt.datetime.now(UTC).timestamp() + 310  # five minutes, not the email's week
    [attached] = [p.get_payload(decode=True) for p in received.message.iter_attachments()]
    assert httpx.get(answer.headers["location"]).content == attached  # S3 itself serves the emailed bytes
    storage.delete(f"exports/1/weekly/{WEEK}/sales.xlsx")  # cleanup deleted it: rendered again, served by us
    again = httpx.get(download, timeout=60)
    assert again.status_code == 200 and again.content == attached


def test_altered_link_tokens_are_rate_limited_with_failed_logins_and_logged_without_the_token(tmp_path, monkeypatch):
    """The service's app (`pos-exports serve`): an altered link counts as a failed login of that client, so guessing
    signatures ends in 429 as guessing tokens does; a genuine or an expired link counts nothing. The refusals are
    logged, with neither the altered nor a genuine token in any line."""
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", secrets.token_hex(32))
    monkeypatch.setenv("POS_EXPORTS_API_AUTH_FAILURES_PER_MINUTE", "3")
    eng = engine(f"sqlite:///{tmp_path / 'api.db'}")
    sub = subscriptions.add(
        eng,
        {"business_id": 1, "name": "Weekly sales", "datasets": ["sales"], "formats": ["csv"], "frequency": "weekly",
         "day_of_week": "monday", "at": "07:00", "recipients": [OWNER]}, now=utc_now())  # fmt: skip
    now = dt.datetime.now(UTC)
    genuine = sign(UNSUBSCRIBE, sub.id, OWNER, now)
    expired = sign(UNSUBSCRIBE, sub.id, OWNER, now - dt.timedelta(days=400), days=30)
    altered = [genuine[:-2] + suffix for suffix in ("AA", "BB", "CC") if not genuine.endswith(suffix)][:2]
    recorder = Recorder()
    with serving(create_app(str(eng.url), LocalStorage(tmp_path / "store"))) as base:
        loggers = [logging.getLogger(n) for n in ("pos_exports.api", "uvicorn", "uvicorn.error", "uvicorn.access")]
        for logger in loggers:
            logger.addHandler(recorder)
        try:
            codes = [httpx.get(f"{base}/links/unsubscribe/{genuine}").status_code]
            codes.append(httpx.post(f"{base}/links/unsubscribe/{expired}").status_code)
            codes += [httpx.post(f"{base}/links/unsubscribe/{token}").status_code for token in altered]
            codes.append(httpx.get(f"{base}/links/download/{altered[0]}").status_code)  # the third failure
            codes.append(httpx.post(f"{base}/links/unsubscribe/{genuine}").status_code)  # blocked, even genuine
            bearer = {"Authorization": f"Bearer {genuine}"}
            codes.append(httpx.get(f"{base}/businesses/1/subscriptions", headers=bearer).status_code)
        finally:
            for logger in loggers:
                logger.removeHandler(recorder)
    assert codes == [200, 410, 400, 400, 400, 429, 429]
    assert subscriptions.get(eng, sub.id).is_active  # the blocked genuine POST paused nothing
    refused = [line for line in recorder.lines if line.startswith("refused ")]
    assert (
        len(refused) == 3
        and "refused unsubscribe link from 127.0.0.1: this unsubscribe link is not valid" in (refused[0])
    )
    assert sum('"POST /links/unsubscribe/... HTTP/1.1"' in line for line in recorder.lines) == 4
    assert not [line for line in recorder.lines for token in (genuine, expired, *altered) if token in line]


def test_without_a_link_secret_links_are_404_and_count_as_no_failed_attempt(server, monkeypatch):
    monkeypatch.delenv("POS_EXPORTS_LINK_SECRET", raising=False)
    answers = [httpx.post(f"{server}/links/unsubscribe/some-token") for _ in range(12)]  # the limit is 10
    assert {a.status_code for a in answers} == {404}
    assert answers[0].text == "this service sends no links (POS_EXPORTS_LINK_SECRET is not set)\n"
