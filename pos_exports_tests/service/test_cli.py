"""The API's CLI: `pos-exports tokens ...` against a real server, and `pos-exports serve` as a real process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx

from pos_exports.cli import main
from pos_exports.service.app import create_app
from pos_exports.state import engine
from pos_exports.storage.base import LocalStorage
from pos_exports_tests.service.conftest import serving


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tokens_create_shows_the_secret_once_list_never_and_revoke_makes_it_401(tmp_path, capsys):
    code, out, _ = _cli(capsys, "tokens", "create", "--business", "1")
    assert code == 0
    [(token_id, secret)] = re.findall(r"^token (\d+) \(business 1\): (pxt_\S+)$", out, re.M)
    assert "not shown again" in out
    code, out, _ = _cli(capsys, "tokens", "create", "--business", "1", "--read-only", "--label", "shop app")
    [(ro_id, ro_secret)] = re.findall(r"^token (\d+) \(business 1, read-only\): (pxt_\S+)$", out, re.M)
    assert code == 0 and ro_secret != secret
    assert _cli(capsys, "tokens", "create")[0] == 2  # neither a business nor the data team
    eng = engine()  # the CLI's database (POS_EXPORTS_STATE_URL of the test)
    with serving(create_app(str(eng.url), LocalStorage(tmp_path / "store"))) as base:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}) as c:
            assert c.get("/businesses/1/subscriptions").status_code == 200
            code, listed, _ = _cli(capsys, "tokens", "list")
            assert code == 0 and secret not in listed and ro_secret not in listed
            lines = [line for line in listed.splitlines() if not line.startswith("INFO:")]  # uvicorn's, captured
            assert re.fullmatch(rf"{token_id}  business 1  read-write  active  last used \S+ \S+ UTC", lines[0])
            assert lines[1] == f"{ro_id}  business 1  read-only  active  never used  shop app"
            code, out, _ = _cli(capsys, "tokens", "revoke", token_id)
            assert (code, out) == (0, f"token {token_id} revoked\n")
            assert c.get("/businesses/1/subscriptions").status_code == 401
        code, _, err = _cli(capsys, "tokens", "revoke", token_id)
        assert code == 2 and f"id: no active token with id {token_id}" in err
        code, listed, _ = _cli(capsys, "tokens", "list")
        assert re.match(rf"{token_id}  business 1  read-write  revoked \d{{4}}-\d\d-\d\d  last used ", listed)
        assert secret not in listed and ro_secret not in listed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_docs_and_openapi_then_stops_cleanly_on_sigterm(tmp_path):
    port = _free_port()
    env = {**os.environ, "POS_EXPORTS_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    env["POS_EXPORTS_STORAGE"] = str(tmp_path / "store")
    # SIGTERM's default action in the child: an ignored SIGTERM is inherited across exec (something in a long test
    # session may ignore it), and uvicorn restores the disposition it found before re-raising the signal.
    start = "import runpy, signal; signal.signal(signal.SIGTERM, signal.SIG_DFL); runpy.run_module('pos_exports.cli')"
    argv = [sys.executable, "-c", start, "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base, spec = f"http://127.0.0.1:{port}", None
        for _ in range(600):  # until it listens (a wait, not a timed assertion)
            if proc.poll() is not None:
                break
            try:
                spec = httpx.get(f"{base}/openapi.json")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert spec is not None and spec.status_code == 200, proc.stderr.read() if proc.poll() is not None else ""
        paths = spec.json()["paths"]
        assert "/businesses/{business_id}/deliveries" in paths and "/links/unsubscribe/{token}" in paths
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
        assert httpx.get(f"{base}/businesses/1/subscriptions").status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    # a graceful shutdown, then uvicorn ends by the signal it was sent (as process supervisors expect)
    assert proc.returncode == -signal.SIGTERM, err
    assert "Application shutdown complete" in err and "Finished server process" in err
    assert "WARNING:  refused API request from 127.0.0.1 to /businesses/1/subscriptions" in err  # uvicorn's format
