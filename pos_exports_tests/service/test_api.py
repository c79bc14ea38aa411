"""The HTTP API on a real uvicorn server (127.0.0.1, a free port), over a socket with httpx."""

from __future__ import annotations

import logging

import httpx
import pytest
import sqlalchemy as sa

from pos_exports.core.clock import utc_now
from pos_exports.delivery import ledger
from pos_exports.operations import tokens
from pos_exports.service.app import create_app
from pos_exports.state import api_tokens, engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.service.conftest import serving

WEEKLY = {
    "name": "Weekly",
    "datasets": ["sales"],
    "formats": ["csv"],
    "frequency": "weekly",
    "day_of_week": "monday",
    "at": "07:00",
    "recipients": ["owner@a.example"],
}


@pytest.fixture
def api(tmp_path):
    """(base URL, state engine, storage) of a running server on a fresh state database and local storage."""
    eng = engine(f"sqlite:///{tmp_path / 'api.db'}")
    storage = LocalStorage(tmp_path / "store")
    with serving(create_app(str(eng.url), storage)) as base:
        yield base, eng, storage


def _client(base: str, secret: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"})


def test_a_business_token_manages_its_subscriptions_and_gets_404_for_another_business(api):
    base, eng, _ = api
    _, a = tokens.create(eng, 1, now=utc_now())
    _, b = tokens.create(eng, 2, now=utc_now())
    with _client(base, a) as ca, _client(base, b) as cb:
        made = ca.post("/businesses/1/subscriptions", json=WEEKLY)
        assert made.status_code == 201 and made.json()["business_id"] == 1 and made.json()["when"].startswith("weekly")
        sub_id = made.json()["id"]
        assert [s["id"] for s in ca.get("/businesses/1/subscriptions").json()] == [sub_id]
        # B's token: A's subscription does not exist, whatever path or body names it
        assert cb.get(f"/businesses/1/subscriptions/{sub_id}").status_code == 404
        assert cb.get(f"/businesses/2/subscriptions/{sub_id}").status_code == 404
        assert cb.patch(f"/businesses/2/subscriptions/{sub_id}", json={"at": "08:00"}).status_code == 404
        assert cb.delete(f"/businesses/2/subscriptions/{sub_id}").status_code == 404
        assert cb.post(f"/businesses/2/subscriptions/{sub_id}/deactivate").status_code == 404
        assert cb.post("/businesses/2/subscriptions", json={**WEEKLY, "business_id": 1}).status_code == 404
        assert cb.get("/businesses/1/deliveries").status_code == 404
        assert cb.get("/businesses/1/settings").status_code == 404
        # A's own writes
        assert ca.patch(f"/businesses/1/subscriptions/{sub_id}", json={"at": "08:30"}).json()["hour"] == 8
        assert ca.post(f"/businesses/1/subscriptions/{sub_id}/deactivate").json()["is_active"] is False
        assert ca.post(f"/businesses/1/subscriptions/{sub_id}/activate").json()["is_active"] is True
        assert ca.delete(f"/businesses/1/subscriptions/{sub_id}").status_code == 200
        assert ca.get(f"/businesses/1/subscriptions/{sub_id}").status_code == 404


def test_validation_errors_name_the_field_as_the_cli_words_it(api):
    base, eng, _ = api
    _, a = tokens.create(eng, 1, now=utc_now())
    from pos_exports.delivery.subscriptions import SubscriptionError, validate

    with pytest.raises(SubscriptionError) as cli_error:
        validate({**WEEKLY, "business_id": 1, "frequency": "hourly"})
    with _client(base, a) as ca:
        bad = ca.post("/businesses/1/subscriptions", json={**WEEKLY, "frequency": "hourly"})
        assert bad.status_code == 422
        assert bad.json() == {"detail": str(cli_error.value), "field": "frequency", "message": cli_error.value.message}
        assert "daily" in bad.json()["message"] and "monthly" in bad.json()["message"]
        settings = ca.put("/businesses/1/settings", json={"reply_to": "not an address"})
        assert settings.status_code == 422 and settings.json()["field"] == "reply_to"
        ok = ca.put("/businesses/1/settings", json={"notify_success": True, "failure_recipients": ["it@a.example"]})
        assert ok.json()["notify_success"] is True and ca.get("/businesses/1/settings").json()[
            "failure_recipients"
        ] == ["it@a.example"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_read_only_revoked_and_unknown_tokens_and_the_secret_never_logged(api):
    base, eng, _ = api
    ro, ro_secret = tokens.create(eng, 1, read_only=True, now=utc_now())
    gone, gone_secret = tokens.create(eng, 1, now=utc_now())
    team, team_secret = tokens.create(eng, None, now=utc_now())
    assert tokens.revoke(eng, gone.id, now=utc_now())
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    old_level, root.level = root.level, logging.DEBUG
    try:
        with _client(base, ro_secret) as c:
            assert c.get("/businesses/1/subscriptions").status_code == 200
            assert c.post("/businesses/1/subscriptions", json=WEEKLY).status_code == 403
        with _client(base, gone_secret) as c:
            assert c.get("/businesses/1/subscriptions").status_code == 401
        with _client(base, team_secret) as c:  # the data team acts on any business
            assert c.post("/businesses/7/subscriptions", json=WEEKLY).status_code == 201
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    assert any("refused API request" in line for line in records.lines)
    assert not any(secret in line for line in records.lines for secret in (ro_secret, gone_secret, team_secret))
    assert tokens.digest(gone_secret) != gone_secret and gone_secret.startswith(tokens.PREFIX)


def test_failed_authentication_is_rate_limited_per_client(api):
    base, _, _ = api
    with _client(base, "pxt_wrong") as c:
        codes = [c.get("/businesses/1/subscriptions").status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


def test_history_details_and_download_of_one_delivery(api):
    base, eng, storage = api
    _, a = tokens.create(eng, 1, now=utc_now())
    _, b = tokens.create(eng, 2, now=utc_now())
    data = b"date,total\n2025-03-03,12.50\n"
    storage.write_bytes("exports/1/sales.csv", data)
    import hashlib

    files = [
        {"name": "sales.csv", "dataset": "sales", "format": "csv", "bytes": len(data),
         "sha256": hashlib.sha256(data).hexdigest(), "uri": storage.uri("exports/1/sales.csv")},
        {"name": "gone.csv", "dataset": "sales", "format": "csv", "bytes": 1, "sha256": "x",
         "uri": storage.uri("exports/1/gone.csv")},
    ]  # fmt: skip
    rows = ledger.open_rows(eng, 5, 1, "weekly", "2025-03-03", ["owner@a.example"], "run-1", now=utc_now())
    import sqlalchemy as sa

    from pos_exports.state import deliveries

    with eng.begin() as conn:
        conn.execute(sa.update(deliveries).values(files=files, status="emailed", smtp_response="250 OK"))
    row_id = rows[0]["id"]
    with _client(base, a) as ca, _client(base, b) as cb:
        page = ca.get("/businesses/1/deliveries", params={"status": "emailed", "limit": 1}).json()
        assert [r["id"] for r in page["items"]] == [row_id] and page["more"] is False
        assert ca.get("/businesses/1/deliveries", params={"status": "sent"}).status_code == 422
        one = ca.get(f"/businesses/1/deliveries/{row_id}").json()
        assert one["smtp_response"] == "250 OK" and one["files"][0]["sha256"] == files[0]["sha256"]
        got = ca.get(f"/businesses/1/deliveries/{row_id}/files/sales.csv")
        assert got.status_code == 200 and got.content == data
        gone = ca.get(f"/businesses/1/deliveries/{row_id}/files/gone.csv")
        assert gone.status_code == 410 and "no longer in storage" in gone.json()["detail"]
        assert cb.get(f"/businesses/2/deliveries/{row_id}").status_code == 404
        assert cb.get(f"/businesses/2/deliveries/{row_id}/files/sales.csv").status_code == 404
        assert cb.get("/businesses/2/deliveries").json()["items"] == []
        assert ca.get("/businesses/1/statistics").status_code == 200
        assert [r["id"] for r in ca.get("/businesses/1/recent").json()] == [row_id]


API_LOGGERS = ("pos_exports.api", "uvicorn", "uvicorn.error", "uvicorn.access")


def test_a_planted_token_is_in_no_log_line_of_a_failed_or_successful_request(api, monkeypatch):
    """The API's and uvicorn's loggers, recorded while requests succeed and fail with secrets planted in the
    header, the query string and a link's path: each request is logged (the access log: path alone), no secret."""
    base, eng, _ = api
    monkeypatch.setenv("POS_EXPORTS_LINK_SECRET", "link-secret-" + "x" * 32)  # links are checked, not unconfigured
    _, good = tokens.create(eng, 1, now=utc_now())
    _, read_only = tokens.create(eng, 1, read_only=True, now=utc_now())
    gone, revoked = tokens.create(eng, 1, now=utc_now())
    tokens.revoke(eng, gone.id, now=utc_now())
    unknown = tokens.PREFIX + "planted-never-issued-0123456789abcdef"
    records = _Records()
    loggers = [logging.getLogger(name) for name in API_LOGGERS]  # after the server started: uvicorn set them up
    for logger in loggers:
        logger.addHandler(records)
    try:
        with _client(base, good) as c:
            assert c.post("/businesses/1/subscriptions", json=WEEKLY).status_code == 201
            assert c.get("/businesses/1/subscriptions", params={"access_token": good}).status_code == 200
            assert c.get("/businesses/2/subscriptions").status_code == 404
            assert c.post("/businesses/1/subscriptions", json={**WEEKLY, "frequency": good}).status_code == 422
        with _client(base, read_only) as c:
            assert c.delete("/businesses/1/subscriptions/1").status_code == 403
        with _client(base, revoked) as c:
            assert c.get("/businesses/1/settings").status_code == 401
        assert httpx.get(f"{base}/links/download/{good}").status_code == 400  # a "link" that is no link
        with _client(base, unknown) as c:
            codes = [c.get("/businesses/1/recent").status_code for _ in range(10)]
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    assert codes[:8] == [401] * 8 and codes[8:] == [429, 429]  # 10 refusals a minute, the link's counted
    access = [line for line in records.lines if "HTTP/1.1" in line]
    assert len(access) == 17  # every request logged by uvicorn
    assert any('"GET /businesses/1/subscriptions HTTP/1.1" 200' in line for line in access)  # no query string
    assert any('"GET /links/download/... HTTP/1.1" 400' in line for line in access)
    assert sum("refused API request" in line for line in records.lines) == 9  # the revoked and unknown token's
    assert any("refused download link from 127.0.0.1" in line for line in records.lines)
    leaked = [line for line in records.lines for secret in (good, read_only, revoked, unknown) if secret in line]
    assert leaked == []


def test_a_tokens_last_use_is_stamped_at_most_once_a_minute(api):
    base, eng, _ = api
    token, secret = tokens.create(eng, 1, now=utc_now())
    assert tokens.find(eng)[0].last_used_at is None
    with _client(base, secret) as c:
        assert c.get("/businesses/1/subscriptions").status_code == 200
        [first] = tokens.find(eng)
        assert first.last_used_at is not None and first.last_used_at >= token.created_at
        assert c.get("/businesses/1/recent").status_code == 200
        assert tokens.find(eng)[0].last_used_at == first.last_used_at  # within the minute: not written again
        long_ago = first.last_used_at - tokens.STAMP_EVERY
        with eng.begin() as conn:
            conn.execute(sa.update(api_tokens).values(last_used_at=long_ago))
        assert c.get("/businesses/1/recent").status_code == 200
        assert tokens.find(eng)[0].last_used_at > first.last_used_at  # a minute later: stamped again
    with _client(base, "pxt_unknown") as c:
        assert c.get("/businesses/1/recent").status_code == 401
    assert len(tokens.find(eng)) == 1


def test_malformed_query_path_and_body_values_get_the_projects_one_line_422(api):
    """FastAPI's own checks answer in the CLI's shape and words: the field, and what it accepts."""
    from pos_exports.cli.history import CliError, _instant

    base, eng, _ = api
    _, a = tokens.create(eng, 1, now=utc_now())
    with pytest.raises(CliError) as cli_since:
        _instant("since", "last tuesday")
    with _client(base, a) as c:
        for path in ("/businesses/1/statistics", "/businesses/1/deliveries"):  # query: an instant
            bad = c.get(path, params={"since": "last tuesday"})
            message = "'last tuesday' is not a date (YYYY-MM-DD) or ISO date-time"
            assert (bad.status_code, bad.json()) == (422, {"detail": str(cli_since.value), "field": "since",
                                                           "message": message})  # fmt: skip
            until = c.get(path, params={"until": "2025-13-01"}).json()
            assert until["field"] == "until" and until["detail"].startswith("until: '2025-13-01' is not a date")
            assert c.get(path, params={"since": "2025-03-01", "until": "2025-03-08T00:00"}).status_code == 200
        assert c.get("/businesses/1/deliveries", params={"limit": "0"}).json() == {
            "detail": "limit: 0 is out of range (1-1000)", "field": "limit", "message": "0 is out of range (1-1000)"
        }  # fmt: skip
        assert c.get("/businesses/1/subscriptions", params={"active": "maybe"}).json()["detail"] == (
            "active: 'maybe' is not true or false"
        )
        path = c.get("/businesses/1/subscriptions/first")  # path: not a whole number
        message = "'first' is not a whole number"
        assert (path.status_code, path.json()) == (422, {"detail": f"sub_id: {message}", "field": "sub_id",
                                                         "message": message})  # fmt: skip
        not_json = c.post(
            "/businesses/1/subscriptions", content=b"{name: 1", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422 and not_json.json()["field"] == "body"
        assert not_json.json()["detail"].startswith("body: not valid JSON")
        a_list = c.put("/businesses/1/settings", json=["notify_success"])
        message = "expected a JSON object of fields, got ['notify_success']"
        assert a_list.json() == {"detail": f"body: {message}", "field": "body", "message": message}
        assert c.post("/businesses/1/subscriptions").json()["detail"] == "body: required"
