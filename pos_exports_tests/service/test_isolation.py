"""Isolation of the API, endpoint by endpoint, on a real uvicorn server: the routes are read from the app, so an
endpoint added without a line in ROUTES fails `test_every_endpoint_is_in_the_matrix`.

Business A (1) and business B (2) each have a subscription, a delivered file and settings. A's token asking for
B's objects gets 404 whether B is named in the path, by an object id under A's path, in the query or in the body,
and nothing of B changes; a read-only token gets 403 on every write and nothing is written; a revoked token gets
401 everywhere; the data team's token works on B. Trigger is only refused here (no run is started)."""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from pos_exports.archive.read import save_businesses
from pos_exports.core.clock import utc_now
from pos_exports.delivery import ledger, subscriptions
from pos_exports.operations import tokens
from pos_exports.service import links
from pos_exports.service.app import create_app
from pos_exports.source.database import connect, list_businesses
from pos_exports.state import deliveries, engine, notification_settings
from pos_exports.state import subscriptions as subscription_rows
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.fixtures import load_sqlite
from pos_exports_tests.service.conftest import serving

A, B = 1, 2
WEEK = "2025-03-03"
BASE = "/businesses/{business_id}"


def weekly(business_id: int) -> dict[str, Any]:
    return {
        "business_id": business_id,
        "name": f"Weekly {business_id}",
        "datasets": ["sales"],
        "formats": ["csv"],
        "frequency": "weekly",
        "day_of_week": "monday",
        "at": "07:00",
        "recipients": [f"owner@{business_id}.example"],
    }


@dataclass(frozen=True)
class Call:
    """What a request to the route sends besides the path: query (values may name {sub_id}) and a JSON body."""

    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


ROUTES: dict[tuple[str, str], Call] = {
    ("POST", BASE + "/subscriptions"): Call(body={k: v for k, v in weekly(A).items() if k != "business_id"}),
    ("GET", BASE + "/subscriptions"): Call(),
    ("GET", BASE + "/subscriptions/{sub_id}"): Call(),
    ("PATCH", BASE + "/subscriptions/{sub_id}"): Call(body={"at": "09:15"}),
    ("DELETE", BASE + "/subscriptions/{sub_id}"): Call(),
    ("POST", BASE + "/subscriptions/{sub_id}/activate"): Call(),
    ("POST", BASE + "/subscriptions/{sub_id}/deactivate"): Call(),
    ("POST", BASE + "/subscriptions/{sub_id}/trigger"): Call(params={"period": WEEK}),
    ("GET", BASE + "/upcoming"): Call(),
    ("GET", BASE + "/overdue"): Call(),
    ("GET", BASE + "/deliveries"): Call(params={"subscription_id": "{sub_id}"}),
    ("GET", BASE + "/deliveries/{delivery_id}"): Call(),
    ("GET", BASE + "/deliveries/{delivery_id}/files/{name}"): Call(),
    ("GET", BASE + "/statistics"): Call(),
    ("GET", BASE + "/recent"): Call(),
    ("GET", BASE + "/settings"): Call(),
    ("PUT", BASE + "/settings"): Call(body={"notify_success": True}),
}
TRIGGER = ("POST", BASE + "/subscriptions/{sub_id}/trigger")  # launches a run: only its refusals are asserted here


def _app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app serves with a bearer token: all its API routes but the emailed links', which
    carry their own signed token (test_links)."""
    return {
        (method, r.path)
        for r in app.routes
        if isinstance(r, APIRoute) and not r.path.startswith(links.router.prefix + "/")
        for method in r.methods
    }


def _fields(path: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(path) if name}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A's and B's subscriptions, delivered files and settings; tokens; a running server on them."""
    monkeypatch.setenv("POS_EXPORTS_API_AUTH_FAILURES_PER_MINUTE", "1000")  # the 401s below are not a guessing
    eng = engine(f"sqlite:///{tmp_path / 'api.db'}")
    storage = LocalStorage(tmp_path / "store")
    with connect(load_sqlite(tmp_path / "pos.sqlite")) as reader:
        save_businesses(storage, list_businesses(reader))  # the zones upcoming and overdue read
    ids: dict[int, dict[str, Any]] = {}
    for business in (A, B):
        sub = subscriptions.add(eng, weekly(business), now=utc_now())
        data = f"date,total\n{WEEK},{business}2.50\n".encode()
        key = f"exports/{business}/weekly/{WEEK}/sales.csv"
        storage.write_bytes(key, data)
        files = [{"name": "sales.csv", "dataset": "sales", "format": "csv", "bytes": len(data),
                  "sha256": hashlib.sha256(data).hexdigest(), "uri": storage.uri(key)}]  # fmt: skip
        [row] = ledger.open_rows(
            eng, sub.id, business, "weekly", WEEK, sub.recipients, f"run-{business}", now=utc_now()
        )
        with eng.begin() as conn:
            conn.execute(
                sa.update(deliveries).where(deliveries.c.id == row["id"]).values(files=files, status="emailed")
            )
        subscriptions.save_settings(
            eng, {"business_id": business, "failure_recipients": [f"it@{business}.example"]}, now=utc_now()
        )
        ids[business] = {"business_id": business, "sub_id": sub.id, "delivery_id": row["id"], "name": "sales.csv"}
        ids[business]["data"] = data
    secrets = {
        "a": tokens.create(eng, A, now=utc_now())[1],
        "a_read_only": tokens.create(eng, A, read_only=True, now=utc_now())[1],
        "team": tokens.create(eng, None, now=utc_now())[1],
    }
    revoked, secrets["revoked"] = tokens.create(eng, A, now=utc_now())
    assert tokens.revoke(eng, revoked.id, now=utc_now())
    app = create_app(str(eng.url), storage)
    with serving(app) as base:
        yield {"app": app, "base": base, "eng": eng, "ids": ids, "secrets": secrets}


def _state(eng) -> dict[str, list]:
    """Every row the API could change, by table (not the tokens: their last use is stamped)."""
    with eng.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in (subscription_rows, notification_settings, deliveries)
        }


def _request(client: httpx.Client, route: tuple[str, str], ids: dict[str, Any], *, query=None, body=None):
    method, path = route
    call = ROUTES[route]
    params = {k: v.format(**ids) for k, v in call.params.items()} | (query or {})
    content = call.body if body is None else body
    return client.request(method, path.format(**ids), params=params, json=content)


def _client(world, who: str) -> httpx.Client:
    return httpx.Client(base_url=world["base"], headers={"Authorization": f"Bearer {world['secrets'][who]}"})


def test_every_endpoint_is_in_the_matrix(world):
    assert _app_routes(world["app"]) == set(ROUTES)


def test_a_business_token_gets_404_for_another_businesss_objects_wherever_it_names_them(world):
    eng, a_ids, b_ids = world["eng"], world["ids"][A], world["ids"][B]
    before = _state(eng)
    refused: dict[tuple[str, str, str], int] = {}
    with _client(world, "a") as a:
        for route, call in ROUTES.items():
            path = route[1]
            b_body = None if call.body is None else {**call.body, "business_id": B}
            refused[(*route, "B in the path")] = _request(a, route, b_ids, body=b_body).status_code
            if _fields(path) & {"sub_id", "delivery_id"}:  # B's object under A's own path
                refused[(*route, "B's id under A")] = _request(a, route, {**a_ids, **_objects(b_ids)}).status_code
            if "subscription_id" in call.params:
                query = {"subscription_id": str(b_ids["sub_id"])}
                refused[(*route, "B's id in the query")] = _request(a, route, a_ids, query=query).status_code
            if call.body is not None:
                refused[(*route, "B in the body")] = _request(a, route, a_ids, body=b_body).status_code
    assert refused == dict.fromkeys(refused, 404)
    assert len(refused) == 17 + 8 + 1 + 3  # every route by path, its object ids, the query and body
    assert _state(eng) == before  # nothing of B (or A) changed


def _objects(ids: dict[str, Any]) -> dict[str, Any]:
    return {k: ids[k] for k in ("sub_id", "delivery_id")}


def test_a_read_only_token_gets_403_on_every_write_and_writes_nothing(world):
    eng, a_ids = world["eng"], world["ids"][A]
    before = _state(eng)
    writes = [route for route in ROUTES if route[0] not in ("GET", "HEAD")]
    with _client(world, "a_read_only") as ro:
        codes = {route: _request(ro, route, a_ids).status_code for route in writes}
        reads = {route: _request(ro, route, a_ids).status_code for route in ROUTES if route not in writes}
    assert codes == dict.fromkeys(writes, 403) and len(writes) == 7
    assert reads == dict.fromkeys(reads, 200)
    assert _state(eng) == before


def test_a_revoked_or_missing_token_gets_401_on_every_endpoint(world):
    eng, a_ids = world["eng"], world["ids"][A]
    before = _state(eng)
    with _client(world, "revoked") as gone, httpx.Client(base_url=world["base"]) as anonymous:
        codes = {(who, route): _request(c, route, a_ids).status_code for who, c in (("revoked", gone),
                 ("none", anonymous)) for route in ROUTES}  # fmt: skip
    assert codes == dict.fromkeys(codes, 401) and len(codes) == 2 * len(ROUTES)
    assert _state(eng) == before


def test_the_data_teams_token_acts_on_any_business(world):
    eng, b_ids = world["eng"], world["ids"][B]
    done = [r for r in ROUTES if r != TRIGGER and r[0] != "DELETE"] + [r for r in ROUTES if r[0] == "DELETE"]
    with _client(world, "team") as team:
        answers = {}
        for route in done:
            body = None if ROUTES[route].body is None else {**ROUTES[route].body, "business_id": B}
            answers[route] = _request(team, route, b_ids, body=body)
    assert {r: a.status_code for r, a in answers.items()} == {r: 201 if r[0] == "POST" and
            r[1].endswith("/subscriptions") else 200 for r in done}  # fmt: skip
    assert answers[("GET", BASE + "/deliveries/{delivery_id}/files/{name}")].content == b_ids["data"]
    assert answers[("GET", BASE + "/subscriptions/{sub_id}")].json()["id"] == b_ids["sub_id"]
    assert [r["id"] for r in answers[("GET", BASE + "/deliveries")].json()["items"]] == [b_ids["delivery_id"]]
    assert answers[("POST", BASE + "/subscriptions")].json()["business_id"] == B
    assert answers[("PUT", BASE + "/settings")].json()["notify_success"] is True
    assert subscriptions.get(eng, b_ids["sub_id"]) is None  # deleted last
    assert subscriptions.get(eng, world["ids"][A]["sub_id"]) is not None  # A's untouched


def test_a_malformed_body_is_answered_by_the_token_check_first(world):
    """FastAPI reads the body before any dependency: a body that is no JSON object still gets the token's 401,
    404 or 403, and the 422 only for a token that may write there."""
    a_ids, b_ids = world["ids"][A], world["ids"][B]
    with_body = [route for route, call in ROUTES.items() if call.body is not None]
    codes = {}
    with _client(world, "revoked") as gone, _client(world, "a") as a, _client(world, "a_read_only") as ro:
        for route in with_body:
            codes[("revoked", *route)] = _request(gone, route, a_ids, body=["not", "an", "object"]).status_code
            codes[("B's path", *route)] = _request(a, route, b_ids, body=["not", "an", "object"]).status_code
            codes[("read-only", *route)] = _request(ro, route, a_ids, body=["not", "an", "object"]).status_code
            codes[("A", *route)] = _request(a, route, a_ids, body=["not", "an", "object"]).status_code
    expected = {"revoked": 401, "B's path": 404, "read-only": 403, "A": 422}
    assert codes == {key: expected[key[0]] for key in codes} and len(codes) == 4 * 3
