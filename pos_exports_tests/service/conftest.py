"""The service tests: the exports' archive of the fixture week, and `serving(app)`, a real uvicorn server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import uvicorn

from pos_exports_tests.exports.conftest import archived_root  # noqa: F401 (fixture)


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """`app` on a real uvicorn server in a thread, on 127.0.0.1 and a port of its own: its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no race for a free port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            thread.join(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
