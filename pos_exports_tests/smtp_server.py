"""A real SMTP server (aiosmtpd, in this process) whose replies a test can script."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


@dataclass
class ScriptedHandler:
    """An aiosmtpd handler: replies come from per-recipient / per-transaction scripts, then `250 OK`.

    rcpt_replies:  {address: [reply, ...]} consumed one per RCPT for that address
    data_replies:  [reply, ...] consumed one per DATA
    data_delays:   [seconds, ...] consumed one per DATA: sleep before replying (to make clients time out)
    data_faults:   ["drop" | seconds, ...] consumed one per DATA, AFTER the message is committed (kept in
                   `received`, as an MTA that commits at end-of-data): "drop" closes the connection without
                   a reply; a number stalls the reply that many seconds (past the client's timeout)
    on_data:       called (in a worker thread, so it may block) with the DATA count before each DATA is
                   handled: lets a test hold one transaction at the server while another runs
    """

    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    data_delays: list[float] = field(default_factory=list)
    data_faults: list[str | float] = field(default_factory=list)
    on_data: Callable[[int], None] | None = None
    received: list[Received] = field(default_factory=list)
    data_commands: int = 0
    rcpt_commands: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_commands.append(address)
            script = self.rcpt_replies.get(address)
            reply = script.pop(0) if script else "250 OK"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.data_commands += 1
            number = self.data_commands
        if self.on_data is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.on_data, number)
        with self.lock:
            delay = self.data_delays.pop(0) if self.data_delays else 0
            reply = self.data_replies.pop(0) if self.data_replies else "250 OK"
            fault = self.data_faults.pop(0) if self.data_faults else None
        if fault is not None:
            with self.lock:
                self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
            if fault == "drop":
                server.transport.abort()
                return "250 OK"  # never reaches the client
            await asyncio.sleep(float(fault))
            return "250 OK"  # too late: the client has given up
        if delay:
            await asyncio.sleep(delay)
            return "451 4.4.2 too slow"  # the client has given up by now; nothing is delivered
        if reply.startswith("250"):
            with self.lock:
                self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return reply

    def delivered_to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpServer:
    handler: ScriptedHandler
    host: str
    port: int

    def url(self, scheme: str = "smtp", query: str = "", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo}{self.host}:{self.port}" + (f"?{query}" if query else "")


def _start(handler: ScriptedHandler, **kwargs) -> tuple[Controller, SmtpServer]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, SmtpServer(handler, "127.0.0.1", port)


@pytest.fixture
def smtp_server():
    """A plain SMTP server on 127.0.0.1 that also accepts AUTH (any password recorded in `handler.logins`)."""
    handler = ScriptedHandler()

    def authenticator(server, session, envelope, mechanism, auth_data):
        handler.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    controller, server = _start(handler, authenticator=authenticator, auth_require_tls=False)
    yield server
    controller.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through `?cafile=`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _server_context(tls_files) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


@pytest.fixture
def starttls_server(tls_files):
    """An SMTP server that requires STARTTLS before MAIL."""
    handler = ScriptedHandler()
    controller, server = _start(handler, tls_context=_server_context(tls_files), require_starttls=True)
    yield server
    controller.stop()


@pytest.fixture
def smtps_server(tls_files):
    """An SMTP server behind implicit TLS (smtps://)."""
    handler = ScriptedHandler()
    controller, server = _start(handler, ssl_context=_server_context(tls_files))
    yield server
    controller.stop()
