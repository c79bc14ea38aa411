"""The emailed links (`delivery.links`), as HTTP endpoints of the service: `router`, mounted by the service's app.

    GET  /links/download/{token}      the files of that recipient's email: one file as it is (on S3: a redirect to a
                                      5-minute presigned URL), several in one zip (rendered again from the archive
                                      when cleanup has deleted them)
    GET  /links/unsubscribe/{token}   a page with one button (a GET never unsubscribes: mail scanners follow links)
    POST /links/unsubscribe/{token}   one-click unsubscribe (RFC 8058): pauses the subscription, 200

An altered token is 400, an expired one 410, each with one line of text; a token names one recipient's ledger row
(or subscription), so it opens nothing else. Altered tokens count as failed attempts of the client (`limits`: 429
beyond the limit, as failed logins) and are logged without the token; uvicorn's access log shows the path alone, with
`/links/download/...` for a link (`PathOnly`). The app overrides `state_engine`, `export_storage`,
`failed_attempts` and `clock` (`app.dependency_overrides`) to point them elsewhere; by default they are the CLI's:
`POS_EXPORTS_STATE_URL`, `POS_EXPORTS_STORAGE`, a limiter of this process, the UTC clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from pos_exports import config, state
from pos_exports.archive.read import load_businesses
from pos_exports.core.clock import utc_now
from pos_exports.delivery import subscriptions
from pos_exports.delivery.deliver import CONTENT_TYPES
from pos_exports.delivery.downloads import fetch_files, storage_key
from pos_exports.delivery.email import ascii_mail_filename, zip_files
from pos_exports.delivery.ledger import normalize_recipient
from pos_exports.delivery.links import DOWNLOAD, UNSUBSCRIBE, Link, LinkError, LinkExpired, verify
from pos_exports.service.limits import FailedAttempts, client_address
from pos_exports.storage import Storage, open_storage

router = APIRouter(prefix="/links", tags=["emailed links"])
PRESIGNED_SECONDS = 300  # an S3 file is a redirect to a presigned URL that works this long
log = logging.getLogger("pos_exports.api")
_TOKEN_IN_PATH = re.compile(r"(/links/[a-z]+/)[^/\s]+")


class PathOnly(logging.Filter):
    """uvicorn's access log line (`client - "GET /path HTTP/1.1" 200`) with the path alone: no query string (a
    client may put a token there) and no link token (a link opens its files: it is a credential)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            path = _TOKEN_IN_PATH.sub(r"\1...", record.args[2].partition("?")[0])
            record.args = (*record.args[:2], path, *record.args[3:])
        return True


logging.getLogger("uvicorn.access").addFilter(PathOnly())  # for every app of this process


def state_engine() -> sa.Engine:
    return state.engine()


def export_storage() -> Storage:
    return open_storage(config.storage_root())


def clock() -> dt.datetime:
    return utc_now()


@functools.cache
def failed_attempts() -> FailedAttempts:
    return FailedAttempts(config.settings().api_auth_failures_per_minute)


Engine = Annotated[sa.Engine, Depends(state_engine)]
Store = Annotated[Storage, Depends(export_storage)]
Now = Annotated[dt.datetime, Depends(clock)]
Failures = Annotated[FailedAttempts, Depends(failed_attempts)]


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        self.response = PlainTextResponse(text + "\n", status_code=status)


def _link(purpose: str, token: str, now: dt.datetime, request: Request, failures: FailedAttempts) -> Link:
    client = client_address(request)
    if failures.blocked(client):
        raise _Refused(429, "too many refused links or tokens; wait a minute")
    if config.settings().link_secret is None:  # our configuration, not the client's guess: not counted
        raise _Refused(404, "this service sends no links (POS_EXPORTS_LINK_SECRET is not set)")
    try:
        return verify(purpose, token, now)
    except LinkExpired as exc:  # a genuine link, only old: not a guess
        raise _Refused(410, str(exc)) from None
    except LinkError as exc:
        failures.add(client)
        log.warning("refused %s link from %s: %s", purpose, client, exc)
        raise _Refused(400, str(exc)) from None


@router.get("/download/{token}", summary="The files of one emailed export")
def download(token: str, request: Request, eng: Engine, storage: Store, now: Now, failures: Failures) -> Response:
    try:
        link = _link(DOWNLOAD, token, now, request, failures)
        with eng.connect() as conn:
            row = (
                conn.execute(sa.select(state.deliveries).where(state.deliveries.c.id == link.target)).mappings().first()
            )
        if row is None or row["recipient"] != normalize_recipient(link.recipient):
            raise _Refused(404, "this export is no longer known")
        if not row["files"]:
            raise _Refused(404, "this export has no files")
        if len(row["files"]) == 1 and hasattr(storage, "presigned_url"):  # S3 serves a stored file itself
            key = storage_key(storage, row["files"][0].get("uri") or "")
            if key is not None and storage.exists(key):
                return RedirectResponse(storage.presigned_url(key, PRESIGNED_SECONDS), status_code=307)
        folder = Path(tempfile.mkdtemp(prefix="pos-link-"))
        done = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
        try:
            fetched = fetch_files(eng, storage, row, folder / "files", now)
            if fetched.problems:
                raise _Refused(410, "; ".join(fetched.problems))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    except _Refused as refused:
        return refused.response
    business = {b.id: b for b in load_businesses(storage)}.get(row["business_id"])
    name = business.name if business else ""
    if len(fetched.paths) == 1:
        [path] = fetched.paths
        fmt = next(f["format"] for f in row["files"] if Path(f["name"]).name == path.name)
        filename = ascii_mail_filename(name, row["business_id"], path.name, row["period_key"])
        return FileResponse(path, media_type=CONTENT_TYPES[fmt], filename=filename, background=done)
    filename = ascii_mail_filename(name, row["business_id"], "files.zip", row["period_key"])
    zipped = zip_files([(p.name, p) for p in fetched.paths], folder / filename)  # fixed timestamps: same bytes
    return FileResponse(zipped, media_type=CONTENT_TYPES["zip"], filename=filename, background=done)


@router.get("/unsubscribe/{token}", summary="A page to confirm the unsubscribe", response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request, now: Now, failures: Failures) -> Response:
    try:
        _link(UNSUBSCRIBE, token, now, request, failures)
    except _Refused as refused:
        return refused.response
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Stop this export</title></head><body>'
        f'<form method="post" action="{html.escape(token)}"><p>Stop receiving this export by email?</p>'
        '<button type="submit">Stop it</button></form></body></html>'
    )


@router.post("/unsubscribe/{token}", summary="One-click unsubscribe (RFC 8058): pauses the subscription")
def unsubscribe(token: str, request: Request, eng: Engine, now: Now, failures: Failures) -> Response:
    try:
        link = _link(UNSUBSCRIBE, token, now, request, failures)
    except _Refused as refused:
        return refused.response
    sub = subscriptions.get(eng, link.target)
    if sub is None:
        return PlainTextResponse("this subscription no longer exists\n", status_code=404)
    if normalize_recipient(link.recipient) not in {normalize_recipient(r) for r in sub.recipients}:
        return PlainTextResponse(f'you no longer receive "{sub.name}"\n')  # removed since: nothing to pause
    if sub.is_active:
        subscriptions.set_active(eng, sub.id, False, now=now)
    return PlainTextResponse(f'"{sub.name}" is paused: no more emails of it will be sent\n')
