"""The FastAPI app: every endpoint under `/businesses/{business_id}/...`, authenticated by a bearer token.

The same modules as the CLI (subscriptions store and its pydantic input models, ledger, statistics), so a 422
says what the CLI says: `{"detail": "field: message", "field": ..., "message": ...}`. Anything of another
business than the token's answers 404, whatever the ids; a read-only token cannot write (403).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from pos_exports import config, state
from pos_exports.core.clock import utc_now
from pos_exports.core.fields import Flag, Instant, Whole, show, whole_number
from pos_exports.delivery import downloads as delivered
from pos_exports.delivery import ledger
from pos_exports.delivery import subscriptions as store
from pos_exports.operations import stats, tokens
from pos_exports.service import limits, links
from pos_exports.storage import Storage, open_storage

log = logging.getLogger("pos_exports.api")
# What FastAPI's own checks (path and query types, a body that is no JSON object) say, in the CLI's words; a
# project field type (`core.fields`) says its own.
_MESSAGES = {
    "missing": "required",
    "int_parsing": "{value} is not a whole number",
    "int_type": "{value} is not a whole number",
    "bool_parsing": "{value} is not true or false",
    "json_invalid": "not valid JSON",
    "dict_type": "expected a JSON object of fields, got {value}",
    "model_attributes_type": "expected a JSON object of fields, got {value}",
}


def _unprocessable(exc: store.SubscriptionError) -> HTTPException:
    return HTTPException(422, {"detail": str(exc), "field": exc.field, "message": exc.message})


def invalid_request(exc: RequestValidationError) -> dict[str, str]:
    """FastAPI's first validation error (path, query or body) as the project's 422: the field, what it accepts."""
    item = exc.errors()[0]
    loc = [str(part) for part in item["loc"]]
    field = "body" if item["type"] == "json_invalid" or len(loc) < 2 else loc[-1]
    cause = (item.get("ctx") or {}).get("error")
    if isinstance(cause, Exception):
        message = str(cause)
    else:
        message = _MESSAGES.get(item["type"], item["msg"]).format(value=show(item.get("input")))
    return {"detail": f"{field}: {message}", "field": field, "message": message}


def _other_business(body: dict[str, Any], business_id: int) -> None:
    """404 when the body names another business than the path (a malformed id is left to the validation)."""
    named = body.get("business_id")
    if named is None:
        return
    try:
        same = whole_number(named) == business_id
    except ValueError:
        return
    if not same:
        raise HTTPException(404, f"no business with id {named}")


def create_app(state_url: str | None = None, storage: Storage | None = None, instance: Any = None) -> FastAPI:
    """The app on the state database `state_url` (default POS_EXPORTS_STATE_URL) and `storage` (default
    POS_EXPORTS_STORAGE); `instance`: the Dagster instance of triggered runs (default DAGSTER_HOME's)."""
    from pos_exports.service.trigger import Launcher

    launcher = Launcher(instance)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        launcher.close()  # the code server of triggered runs, if one was started

    app = FastAPI(title="pos_exports API", description=__doc__, lifespan=lifespan)
    eng = state.engine(state_url)
    failures = limits.FailedAttempts(config.settings().api_auth_failures_per_minute)
    _storage: list[Storage] = [storage] if storage else []

    def the_storage() -> Storage:
        if not _storage:
            _storage.append(open_storage(config.storage_root()))
        return _storage[0]

    def admitted(request: Request, business_id: int | None) -> tokens.Token:
        """The request's token, if it may act on `business_id` (None: only whether it is a live token)."""
        client = limits.client_address(request)
        if failures.blocked(client):
            raise HTTPException(429, "too many failed authentications; wait a minute")
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        token = (
            tokens.authenticate(eng, secret.strip(), now=utc_now()) if scheme.lower() == "bearer" and secret else None
        )
        if token is None:
            failures.add(client)
            log.warning(
                "refused API request from %s to %s: missing, unknown or revoked token", client, request.url.path
            )
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        if token.business_id is not None and business_id is not None and token.business_id != business_id:
            raise HTTPException(404, "not found")  # another business's objects do not exist for this token
        if token.read_only and request.method not in ("GET", "HEAD"):
            raise HTTPException(403, "this token is read-only")
        return token

    def caller(request: Request, business_id: int) -> tokens.Token:
        return admitted(request, business_id)

    def subscription(business_id: int, sub_id: int) -> store.Subscription:
        sub = store.get(eng, sub_id)
        if sub is None or sub.business_id != business_id:
            raise HTTPException(404, f"no subscription with id {sub_id}")
        return sub

    def out(sub: store.Subscription) -> dict[str, Any]:
        return {
            "id": sub.id,
            **sub.to_input(),
            "when": sub.when,
            "created_at": sub.created_at,
            "updated_at": sub.updated_at,
        }

    _error_handlers(app, admitted)
    # the emailed links, on the same database and storage, their altered tokens counted with the failed logins
    app.include_router(links.router)
    app.dependency_overrides[links.state_engine] = lambda: eng
    app.dependency_overrides[links.export_storage] = the_storage
    app.dependency_overrides[links.failed_attempts] = lambda: failures
    auth = Depends(caller)
    _subscription_routes(app, eng, auth, subscription, out)
    _trigger_route(app, eng, auth, subscription, launcher)
    _settings_routes(app, eng, auth)
    _ledger_routes(app, eng, auth, the_storage, subscription)
    return app


def _path_business(request: Request) -> int | None:
    try:
        return whole_number(request.path_params.get("business_id"))
    except ValueError:
        return None


def _error_handlers(app: FastAPI, admitted: Any) -> None:
    """Errors as the project's JSON: an HTTPException's detail; a validation error as `invalid_request`."""

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI reads the body before the token is checked: the token first, so that a request without a valid
        # token, or for another business, or a read-only one's write, learns nothing from the 422
        if request.url.path.startswith("/businesses/"):
            try:
                await run_in_threadpool(admitted, request, _path_business(request))
            except HTTPException as refused:
                return await _http_error(request, refused)
        return JSONResponse(invalid_request(exc), status_code=422)


BASE = "/businesses/{business_id}"


def _subscription_routes(app: FastAPI, eng: sa.Engine, auth: Any, subscription: Any, out: Any) -> None:
    base = BASE

    @app.post(base + "/subscriptions", status_code=201, dependencies=[auth])
    def create_subscription(business_id: int, body: dict[str, Any]) -> dict[str, Any]:
        _other_business(body, business_id)
        try:
            return out(store.add(eng, {**body, "business_id": business_id}, now=utc_now()))
        except store.SubscriptionError as exc:
            raise _unprocessable(exc) from None

    @app.get(base + "/subscriptions", dependencies=[auth])
    def list_subscriptions(business_id: int, active: Flag | None = None) -> list[dict[str, Any]]:
        return [out(s) for s in store.find(eng, business_id, active)]

    @app.get(base + "/subscriptions/{sub_id}", dependencies=[auth])
    def get_subscription(business_id: int, sub_id: int) -> dict[str, Any]:
        return out(subscription(business_id, sub_id))

    @app.patch(base + "/subscriptions/{sub_id}", dependencies=[auth])
    def update_subscription(business_id: int, sub_id: int, body: dict[str, Any]) -> dict[str, Any]:
        subscription(business_id, sub_id)
        _other_business(body, business_id)
        try:
            return out(store.update(eng, sub_id, body, now=utc_now()))
        except store.SubscriptionError as exc:
            raise _unprocessable(exc) from None

    @app.delete(base + "/subscriptions/{sub_id}", dependencies=[auth])
    def delete_subscription(business_id: int, sub_id: int) -> dict[str, Any]:
        subscription(business_id, sub_id)
        return out(store.remove(eng, sub_id))

    @app.post(base + "/subscriptions/{sub_id}/activate", dependencies=[auth])
    def activate(business_id: int, sub_id: int) -> dict[str, Any]:
        subscription(business_id, sub_id)
        return out(store.set_active(eng, sub_id, True, now=utc_now()))

    @app.post(base + "/subscriptions/{sub_id}/deactivate", dependencies=[auth])
    def deactivate(business_id: int, sub_id: int) -> dict[str, Any]:
        subscription(business_id, sub_id)
        return out(store.set_active(eng, sub_id, False, now=utc_now()))


def _trigger_route(app: FastAPI, eng: sa.Engine, auth: Any, subscription: Any, launcher: Any) -> None:
    @app.post(BASE + "/subscriptions/{sub_id}/trigger", response_model=None)
    def trigger(business_id: int, sub_id: int, period: str, token: tokens.Token = auth) -> JSONResponse:
        """Deliver `period` now: 202 with the run id of the delivery run launched on Dagster; 200 with nothing
        launched when every recipient already has it."""
        from pos_exports.reports.period import period_for
        from pos_exports.service import trigger as triggers

        sub = subscription(business_id, sub_id)
        try:
            chosen = period_for(sub.frequency, period)
        except ValueError as exc:
            raise HTTPException(422, {"detail": f"period: {exc}", "field": "period", "message": str(exc)}) from None
        try:
            by = f"api token {token.id} ({token.scope})"
            launched, body = triggers.trigger(eng, sub, chosen, launcher, by, now=utc_now())
        except triggers.LaunchError as exc:
            raise HTTPException(503, str(exc)) from None
        return JSONResponse(body, status_code=202 if launched else 200)


def _settings_routes(app: FastAPI, eng: sa.Engine, auth: Any) -> None:
    base = BASE

    @app.get(base + "/settings", dependencies=[auth])
    def get_settings(business_id: int) -> dict[str, Any]:
        return store.get_settings(eng, business_id).to_input()

    @app.put(base + "/settings", dependencies=[auth])
    def put_settings(business_id: int, body: dict[str, Any]) -> dict[str, Any]:
        _other_business(body, business_id)
        try:
            return store.save_settings(eng, {**body, "business_id": business_id}, now=utc_now()).to_input()
        except store.SubscriptionError as exc:
            raise _unprocessable(exc) from None


def _ledger_routes(app: FastAPI, eng: sa.Engine, auth: Any, the_storage: Any, subscription: Any) -> None:
    base = BASE

    @app.get(base + "/upcoming", dependencies=[auth])
    def upcoming(business_id: int, limit: Whole(1, 500) = 20) -> list[dict[str, Any]]:
        zones = stats.business_zones(the_storage())
        return stats.upcoming(eng, zones, utc_now(), limit, business_id=business_id)

    @app.get(base + "/overdue", dependencies=[auth])
    def overdue(business_id: int, lookback_days: Whole(1, 366) = 7) -> list[dict[str, Any]]:
        s = the_storage()
        now = utc_now()
        return stats.overdue(eng, s, stats.business_zones(s), now, lookback_days, business_id=business_id)

    @app.get(base + "/deliveries", dependencies=[auth])
    def history(
        business_id: int,
        subscription_id: int | None = None,
        status: str | None = None,
        since: Instant | None = None,
        until: Instant | None = None,
        limit: Whole(1, 1000) = 100,
        offset: Whole(0) = 0,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        if subscription_id is not None:
            subscription(business_id, subscription_id)  # another business's subscription: 404, not an empty page
        try:
            rows = ledger.history(
                eng,
                business_id,
                subscription_id,
                status,
                limit=limit + 1,
                offset=offset,
                since=since,
                until=until,
                run_id=run_id,
            )
        except ValueError as exc:
            raise HTTPException(422, {"detail": f"status: {exc}", "field": "status", "message": str(exc)}) from None
        return {
            "items": [_summary(r) for r in rows[:limit]],
            "offset": offset,
            "limit": limit,
            "more": len(rows) > limit,
        }

    @app.get(base + "/deliveries/{delivery_id}", dependencies=[auth])
    def delivery(business_id: int, delivery_id: int) -> dict[str, Any]:
        row = ledger.delivery(eng, delivery_id, business_id)
        if row is None:
            raise HTTPException(404, f"no delivery with id {delivery_id}")
        return {
            **_summary(row),
            "smtp_response": row["smtp_response"],
            "error": row["error"],
            "message_id": row["message_id"],
            "missing": row["missing"],
            "files": [
                {k: f.get(k) for k in ("name", "dataset", "format", "bytes", "sha256")} for f in row["files"] or []
            ],
        }

    @app.get(base + "/deliveries/{delivery_id}/files/{name}", dependencies=[auth], response_model=None)
    def download(business_id: int, delivery_id: int, name: str) -> FileResponse | RedirectResponse:
        row = ledger.delivery(eng, delivery_id, business_id)
        if row is None:
            raise HTTPException(404, f"no delivery with id {delivery_id}")
        s = the_storage()
        try:
            file = delivered.delivered_file(s, row, name)
        except delivered.FileGone as exc:
            return _rendered_again(eng, row, name, s, exc)
        if hasattr(s, "presigned_url"):  # S3: the client reads the object itself, for a few minutes
            return RedirectResponse(s.presigned_url(file.key, config.settings().api_presign_seconds), 307)
        return FileResponse(s.path(file.key), filename=file.name)  # streamed from disk

    @app.get(base + "/statistics", dependencies=[auth])
    def statistics(business_id: int, since: Instant | None = None, until: Instant | None = None) -> dict:
        return stats.delivery_stats(eng, since=since, until=until, business_id=business_id)

    @app.get(base + "/recent", dependencies=[auth])
    def recent(business_id: int, limit: Whole(1, 100) = 10) -> list[dict[str, Any]]:
        return [_summary(r) for r in ledger.history(eng, business_id, limit=limit)]


def _rendered_again(
    eng: sa.Engine, row: dict[str, Any], name: str, s: Storage, gone: delivered.FileGone
) -> FileResponse:
    """A file cleanup deleted, rendered again from the archive with its SHA-256 checked (the CLI's
    `history --download` does the same, `delivery.downloads.fetch_files`); 410 with the reason otherwise."""
    entry = [f for f in row["files"] or [] if Path(f["name"]).name == name]
    if not entry:
        raise HTTPException(410, str(gone))
    folder = Path(tempfile.mkdtemp(prefix="pos-download-"))
    fetched = delivered.fetch_files(eng, s, {**row, "files": entry}, folder, now=utc_now())
    if fetched.problems or not fetched.paths:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(410, "; ".join(fetched.problems) or str(gone))
    done = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    return FileResponse(fetched.paths[0], filename=name, background=done)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "subscription_id", "business_id", "period_kind", "period_key", "recipient", "status")
    keep += ("attempts", "run_id")
    return {
        **{k: row[k] for k in keep},
        "bytes": row["bytes"],
        "created_at": row["created_at"],
        "emailed_at": row["emailed_at"],
    }
