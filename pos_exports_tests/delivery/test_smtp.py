"""Sending through a real SMTP server (aiosmtpd in this process) with scripted replies, and the ledger around it:
`send` on its own, and whole deliveries through the real `delivery.deliver.deliver` (the week's archive made by
the real archive code, its exports rendered by the real exports)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import zipfile

import pytest

from pos_exports import state
from pos_exports.archive import index
from pos_exports.archive.read import load_businesses
from pos_exports.core.clock import utc_now
from pos_exports.delivery import deliver as delivery
from pos_exports.delivery import ledger, subscriptions
from pos_exports.delivery.email import EmailHeaderError, SmtpSettings, build_message, send
from pos_exports.exports.produce import period_folder
from pos_exports.reports.period import period_for
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.delivery.samples import content_for, make_files
from pos_exports_tests.exports.conftest import archived_root  # noqa: F401 (a fixture)
from pos_exports_tests.exports.names import export_files

NO_WAIT = {"sleep": lambda s: None}
WEEK = "2025-03-03"
_RUNS = itertools.count(1)


@pytest.fixture
def shop(archived_root, tmp_path, monkeypatch):  # noqa: F811
    """(state database, storage, business 1): the week's real archive, indexed in the state database that
    POS_EXPORTS_STATE_URL names (delivery readiness reads the index)."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("POS_EXPORTS_STATE_URL", url)
    eng = state.engine(url)
    storage = LocalStorage(archived_root)
    index.reindex(storage, eng)
    return eng, storage, {b.id: b for b in load_businesses(storage)}[1]


def weekly_sales(eng, recipients: list[str]) -> subscriptions.Subscription:
    """The stored weekly sales subscription (XLSX and CSV) of business 1 to `recipients`."""
    for sub in subscriptions.find(eng, business_id=1):
        return sub
    data = {"business_id": 1, "name": "Weekly sales", "datasets": ["sales"], "formats": ["xlsx", "csv"]}
    data |= {"frequency": "weekly", "day_of_week": "monday", "at": "07:00", "recipients": recipients}
    return subscriptions.add(eng, data, now=utc_now())


def deliver(shop, recipients: list[str], settings: SmtpSettings | None, outbox, *, sub=None, sleep=None):
    """One run of the real delivery of the week; returns (results per recipient, recipients this run sent to)."""
    eng, storage, business = shop
    sub = sub or weekly_sales(eng, recipients)
    outcome = delivery.deliver(
        eng,
        storage,
        sub,
        business,
        "weekly",
        WEEK,
        run_id=f"run-{next(_RUNS)}",
        smtp=settings,
        outbox_dir=outbox,
        sleep=sleep or (lambda s: None),
        clock=utc_now,
    )
    return outcome.results, list(outcome.results)


def rows_by_recipient(shop):
    eng = shop[0]
    return {r["recipient"]: r for r in ledger.history(eng, subscription_id=weekly_sales(eng, []).id)}


def test_message_arrives_complete(smtp_server, tmp_path):
    files = make_files(tmp_path / "files")
    to = ["owner@cafe.example", "accountant@books.example"]
    msg = build_message(content_for(files, to), now=utc_now())
    settings = SmtpSettings.from_url(smtp_server.url(query="from=bounces@acme.example"))
    results = send(msg, to, settings, tmp_path / "outbox", **NO_WAIT)

    assert {r: (x.status, x.code, x.attempts) for r, x in results.items()} == {
        "owner@cafe.example": ("emailed", 250, 1),
        "accountant@books.example": ("emailed", 250, 1),
    }
    assert results["owner@cafe.example"].response == "250 OK"
    assert len(smtp_server.handler.received) == 1
    got = smtp_server.handler.received[0]
    assert got.mail_from == "bounces@acme.example"
    assert got.rcpt_tos == to
    m = got.message
    assert m["From"].addresses[0].display_name == "Acme POS, Exports"
    assert m["From"].addresses[0].addr_spec == "exports@acme.example"
    assert m["Reply-To"] == "owner@cafe.example"
    assert m["Subject"] == "Café Zürich & Sons: monthly export for March 2025"
    assert m["Message-ID"] == msg["Message-ID"] == results["owner@cafe.example"].message_id
    assert "Bcc" not in m
    assert m.get_body(("plain",)).get_content().startswith("Hello,")
    assert "Café Zürich &amp; Sons" in m.get_body(("html",)).get_content()
    attached = {p.get_filename(): (p.get_content_type(), p.get_payload(decode=True)) for p in m.iter_attachments()}
    assert attached == {
        "sales.xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", files[0].path.read_bytes()),
        "sales.csv": ("text/csv", files[1].path.read_bytes()),
    }
    assert not (tmp_path / "outbox").exists()


def test_link_mode_message_arrives_without_attachments(smtp_server, tmp_path):
    from pos_exports.delivery.email import Attachment

    files = [
        Attachment("sales.pdf", None, "https://files.example/sales.pdf?sig=1", 25 * 1024 * 1024, "application/pdf")
    ]
    msg = build_message(content_for(files, ["a@example.com"]), now=utc_now())
    send(msg, ["a@example.com"], SmtpSettings.from_url(smtp_server.url()), tmp_path, **NO_WAIT)
    m = smtp_server.handler.received[0].message
    assert list(m.iter_attachments()) == []
    assert "https://files.example/sales.pdf?sig=1" in m.get_body(("plain",)).get_content()
    assert 'href="https://files.example/sales.pdf?sig=1"' in m.get_body(("html",)).get_content()


def test_auth_with_url_decoded_password(smtp_server, tmp_path):
    msg = build_message(content_for(make_files(tmp_path), ["a@example.com"]), now=utc_now())
    settings = SmtpSettings.from_url(smtp_server.url(userinfo="user%40acme.example:p%40ss%2Fw%3Ard@"))
    results = send(msg, ["a@example.com"], settings, tmp_path, **NO_WAIT)
    assert results["a@example.com"].status == "emailed"
    assert smtp_server.handler.logins == [("user@acme.example", "p@ss/w:rd")]


def test_451_on_data_then_250_is_one_email_and_two_attempts(smtp_server, shop, tmp_path):
    smtp_server.handler.data_replies = ["451 4.3.0 try later"]
    sleeps = []
    results, sent_to = deliver(
        shop, ["owner@cafe.example"], SmtpSettings.from_url(smtp_server.url()), tmp_path / "outbox", sleep=sleeps.append
    )
    r = results["owner@cafe.example"]
    assert (r.status, r.attempts, r.response) == ("emailed", 2, "250 OK")
    assert sleeps == [1]  # the first backoff step
    assert smtp_server.handler.data_commands == 2
    assert len(smtp_server.handler.received) == 1
    row = rows_by_recipient(shop)["owner@cafe.example"]
    assert (row["status"], row["attempts"], row["smtp_response"]) == ("emailed", 2, "250 OK")
    assert row["message_id"] == r.message_id and row["emailed_at"].tzinfo is not None
    assert {f["name"] for f in row["files"]} == export_files(["sales"], ("xlsx", "csv"))
    assert row["bytes"] == sum(f["bytes"] for f in row["files"]) > 0
    attached = []
    for part in smtp_server.handler.received[0].message.iter_attachments():
        payload = part.get_payload(decode=True)
        if part.get_filename().endswith(".zip"):  # a dataset's CSV tables travel as one zip
            with zipfile.ZipFile(io.BytesIO(payload)) as bundle:
                attached += [bundle.read(name) for name in bundle.namelist()]
        else:
            attached.append(payload)
    folder = period_folder(1, period_for("weekly", WEEK))
    stored = [shop[1].read_bytes(f"{folder}/{f['name']}") for f in row["files"]]
    assert sorted(attached) == sorted(stored)  # the rendered files themselves


def test_550_for_one_recipient_of_two(smtp_server, shop, tmp_path):
    good, bad = "owner@cafe.example", "nobody@cafe.example"
    smtp_server.handler.rcpt_replies = {bad: ["550 5.1.1 no such user"] * 5}
    settings = SmtpSettings.from_url(smtp_server.url())

    results, _ = deliver(shop, [good, bad], settings, tmp_path / "outbox")
    assert (results[good].status, results[bad].status) == ("emailed", "failed")
    assert (results[bad].code, results[bad].attempts) == (550, 1)  # 5xx is final: not retried
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [[good]]
    rows = rows_by_recipient(shop)
    assert rows[good]["status"] == "emailed"
    assert rows[bad]["status"] == "failed" and "550" in rows[bad]["smtp_response"]
    assert rows[bad]["error"].startswith("rejected: 550") and rows[bad]["error_kind"] == "permanent"
    assert ledger.retryable(shop[0], max_attempts=5) == []

    # A second delivery of the same period sends nothing to either recipient.
    rcpt_before = list(smtp_server.handler.rcpt_commands)
    results2, sent_to2 = deliver(shop, [good, bad], settings, tmp_path / "outbox")
    assert (results2, sent_to2) == ({}, [])
    assert smtp_server.handler.rcpt_commands == rcpt_before
    assert len(smtp_server.handler.delivered_to(good)) == 1
    assert rows_by_recipient(shop) == rows


def test_451_on_rcpt_retries_only_that_recipient(smtp_server, shop, tmp_path):
    a, b = "a@example.com", "b@example.com"
    smtp_server.handler.rcpt_replies = {b: ["451 4.7.1 greylisted"]}
    results, _ = deliver(shop, [a, b], SmtpSettings.from_url(smtp_server.url()), tmp_path)
    assert (results[a].attempts, results[b].attempts) == (1, 2)
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [[a], [b]]
    assert smtp_server.handler.rcpt_commands == [a, b, b]
    rows = rows_by_recipient(shop)
    assert (rows[a]["attempts"], rows[b]["attempts"]) == (1, 2)


def test_temporary_failures_exhausted_are_retryable_later(smtp_server, shop, tmp_path):
    smtp_server.handler.data_replies = ["421 4.3.2 shutting down"] * 3
    settings = SmtpSettings.from_url(smtp_server.url())
    results, _ = deliver(shop, ["a@example.com"], settings, tmp_path)
    r = results["a@example.com"]
    assert (r.status, r.code, r.attempts) == ("retry", 421, 3)
    assert smtp_server.handler.received == []
    row = rows_by_recipient(shop)["a@example.com"]
    assert row["status"] == "failed" and row["error"].startswith("temporary: 421") and row["attempts"] == 3
    assert row["error_kind"] == "transient"
    assert [x["id"] for x in ledger.retryable(shop[0], max_attempts=6)] == [row["id"]]
    assert ledger.retryable(shop[0], max_attempts=3) == []

    # The retry run succeeds; the ledger adds the attempts up and the row leaves the retry list.
    results, _ = deliver(shop, ["a@example.com"], settings, tmp_path)
    assert results["a@example.com"].status == "emailed"
    row = rows_by_recipient(shop)["a@example.com"]
    assert (row["status"], row["attempts"], row["error"], row["error_kind"]) == ("emailed", 4, None, None)
    assert ledger.retryable(shop[0], max_attempts=6) == []
    assert len(smtp_server.handler.received) == 1


def test_5xx_on_data_is_final_for_everyone(smtp_server, shop, tmp_path):
    smtp_server.handler.data_replies = ["554 5.7.1 message refused"] * 2  # each recipient gets its own message
    results, _ = deliver(shop, ["a@example.com", "b@example.com"], SmtpSettings.from_url(smtp_server.url()), tmp_path)
    assert len(results) == 2
    assert {(r.status, r.code, r.attempts, r.stage) for r in results.values()} == {("failed", 554, 1, "data")}
    rows = rows_by_recipient(shop)
    assert all(r["error"].startswith("failed: 554") and r["error_kind"] == "permanent" for r in rows.values())
    assert ledger.retryable(shop[0], 5) == []


def test_a_reply_timed_out_after_the_body_is_unknown_not_retried(smtp_server, shop, tmp_path):
    smtp_server.handler.data_delays = [1.5, 1.5]  # the reply comes too late: the client cannot know the outcome
    settings = SmtpSettings.from_url(smtp_server.url(query="timeout=1"))
    results, _ = deliver(shop, ["a@example.com"], settings, tmp_path)  # 3 transactions allowed, 1 made
    r = results["a@example.com"]
    assert (r.status, r.attempts, r.code, r.stage) == ("unknown", 1, None, "data")
    assert "timed out" in r.response and "may have been delivered" in r.response
    assert smtp_server.handler.data_commands == 1  # the body is never sent a second time
    row = rows_by_recipient(shop)["a@example.com"]
    assert (row["status"], row["attempts"]) == ("unknown", 1) and row["error"].startswith("unknown: ")
    assert row["error_kind"] is None
    assert ledger.retryable(shop[0], max_attempts=3) == []


def test_a_committed_message_whose_reply_stalls_is_sent_once(smtp_server, tmp_path):
    smtp_server.handler.data_faults = [1.5]  # committed at end-of-data, then the reply stalls past the timeout
    settings = SmtpSettings.from_url(smtp_server.url(query="timeout=1"))
    msg = build_message(content_for(make_files(tmp_path), ["a@example.com"]), now=utc_now())
    results = send(msg, ["a@example.com"], settings, tmp_path, **NO_WAIT)
    assert (results["a@example.com"].status, results["a@example.com"].attempts) == ("unknown", 1)
    assert len(smtp_server.handler.received) == 1 and smtp_server.handler.data_commands == 1


def test_connection_refused_is_temporary(tmp_path):
    from pos_exports_tests.smtp_server import free_port

    settings = SmtpSettings.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    msg = build_message(content_for(make_files(tmp_path), ["a@example.com"]), now=utc_now())
    sleeps = []
    results = send(msg, ["a@example.com"], settings, tmp_path, sleep=sleeps.append)
    r = results["a@example.com"]
    assert (r.status, r.attempts, r.stage) == ("retry", 3, "connect")
    assert "ConnectionRefused" in r.response
    assert sleeps == [1, 4]


def test_refused_headers_send_nothing(smtp_server, shop, tmp_path):
    files = make_files(tmp_path)
    settings = SmtpSettings.from_url(smtp_server.url())
    with pytest.raises(EmailHeaderError):
        build_message(content_for(files, ["a@example.com"], subject_template="Hi\r\nBcc: evil@z.com"), now=utc_now())
    # A subscription row holding a second address in one recipient (written around `validate`): the delivery
    # refuses it before any SMTP command and records the failure.
    smuggled = dataclasses.replace(weekly_sales(shop[0], ["a@example.com"]), recipients=["a@example.com, evil@z.com"])
    with pytest.raises(EmailHeaderError):
        deliver(shop, smuggled.recipients, settings, tmp_path, sub=smuggled)
    [row] = [r for r in rows_by_recipient(shop).values() if "evil" in r["recipient"]]
    assert row["status"] == "failed" and row["error"].startswith("EmailHeaderError") and row["emailed_at"] is None
    msg = build_message(content_for(files, ["a@example.com"]), now=utc_now())
    for bad in (["x@y.com\r\nBcc: evil@z.com"], ["a@example.com", "b@example.com, evil@z.com"], ["Eve <e@z.com>"]):
        with pytest.raises(EmailHeaderError):
            send(msg, bad, settings, tmp_path)
    assert smtp_server.handler.rcpt_commands == [] and smtp_server.handler.received == []


def test_starttls(starttls_server, tls_files, tmp_path):
    msg = build_message(content_for(make_files(tmp_path), ["a@example.com"]), now=utc_now())
    cafile = tls_files[0]
    plain = send(msg, ["a@example.com"], SmtpSettings.from_url(starttls_server.url()), tmp_path, **NO_WAIT)
    assert plain["a@example.com"].status == "failed" and "530" in plain["a@example.com"].response
    ok = send(
        msg,
        ["a@example.com"],
        SmtpSettings.from_url(starttls_server.url(query=f"starttls=true&cafile={cafile}")),
        tmp_path,
    )
    assert ok["a@example.com"].status == "emailed"
    untrusted = send(msg, ["a@example.com"], SmtpSettings.from_url(starttls_server.url("smtp+starttls")), tmp_path)
    assert untrusted["a@example.com"].status == "failed" and "certificate" in untrusted["a@example.com"].response
    assert len(starttls_server.handler.received) == 1


def test_smtps(smtps_server, tls_files, tmp_path):
    msg = build_message(content_for(make_files(tmp_path), ["a@example.com"]), now=utc_now())
    settings = SmtpSettings.from_url(smtps_server.url("smtps", query=f"cafile={tls_files[0]}"))
    assert send(msg, ["a@example.com"], settings, tmp_path)["a@example.com"].status == "emailed"
    assert smtps_server.handler.received[0].message["Subject"].startswith("Café")


def test_a_server_without_starttls_is_a_final_configuration_error(smtp_server, tmp_path):
    """smtp+starttls:// to a server that offers no STARTTLS: refused at once, never sent in clear, not retried."""
    msg = build_message(content_for(make_files(tmp_path), ["a@example.com"]), now=utc_now())
    sleeps: list[float] = []
    results = send(
        msg, ["a@example.com"], SmtpSettings.from_url(smtp_server.url("smtp+starttls")), tmp_path, sleep=sleeps.append
    )
    r = results["a@example.com"]
    assert (r.status, r.attempts, r.stage) == ("failed", 1, "connect")
    assert "SMTPNotSupportedError" in r.response and "STARTTLS" in r.response
    assert sleeps == [] and smtp_server.handler.received == []


def test_each_outcome_is_stamped_when_it_happens_not_when_the_delivery_began(smtp_server, shop, tmp_path):
    """A delivery that starts at 06:00 and whose clock reads a minute later at each step: the claim and the
    SMTP reply of the second recipient is stamped later than the first's, and neither at the start instant."""
    eng, storage, business = shop
    start = dt.datetime(2025, 3, 10, 6, 0, tzinfo=dt.UTC)
    ticks = (start + dt.timedelta(minutes=m) for m in itertools.count(1))
    to = ["first@cafe.example", "second@cafe.example"]
    delivery.deliver(
        eng,
        storage,
        weekly_sales(eng, to),
        business,
        "weekly",
        WEEK,
        run_id="run-clock",
        smtp=SmtpSettings.from_url(smtp_server.url()),
        outbox_dir=tmp_path / "outbox",
        sleep=lambda s: None,
        now=start,
        clock=lambda: next(ticks),
    )
    rows = rows_by_recipient(shop)
    first, second = rows["first@cafe.example"], rows["second@cafe.example"]
    assert first["status"] == second["status"] == "emailed"
    assert start < first["emailed_at"] < second["emailed_at"]
    assert first["started_at"] == second["started_at"] == start  # the delivery's work began at its start
