"""A real SMTP server on loopback for the SMTP transport's tests and benchmark: aiosmtpd with a
throwaway CA (trustme), STARTTLS required and AUTH LOGIN/PLAIN over TLS (or implicit TLS), PIPELINING
offered or not, and a script of what to refuse, defer or cut off."""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

USER, PASSWORD = "clinic-relay", "correct horse battery staple 4471"


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes
    queue_id: str

    def message(self) -> Message:
        return message_from_bytes(self.data, policy=default_policy)


@dataclass
class Handler:
    """What the server does with each transaction, and what it received (one entry per message)."""

    pipelining: bool = True
    refuse: dict[str, str] = field(default_factory=dict)  # address -> the RCPT reply, e.g. "550 5.1.1 no such user"
    defer_once: dict[str, str] = field(default_factory=dict)  # address -> a 4xx RCPT reply, given once
    drop_after_dot: set[str] = field(default_factory=set)  # take the message, then cut the connection unanswered
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        if address in self.defer_once:
            return self.defer_once.pop(address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        with self._lock:
            queue_id = f"Q{next(self._ids):07d}"
        for recipient in envelope.rcpt_tos:
            self.received.append(Received(envelope.mail_from, recipient, envelope.content, queue_id))
        if self.drop_after_dot & set(envelope.rcpt_tos):
            self.drop_after_dot -= set(envelope.rcpt_tos)
            server.transport.abort()  # the message is in; its answer never leaves
        return f"250 2.0.0 Ok: queued as {queue_id}"

    def counts(self) -> Counter[str]:
        return Counter(r.recipient for r in self.received)


class Authenticator:
    def __call__(self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        return AuthResult(success=ok, handled=False)


class Certificates:
    """A throwaway CA and a certificate for localhost and 127.0.0.1; ``ca_file`` is what the client trusts."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = folder / "smtp-test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    """``security``: starttls (required, AUTH only after it), tls (implicit), none (plain, no AUTH)."""

    def __init__(self, certificates: Certificates | None, *, security: str = "starttls",
                 handler: Handler | None = None, auth: bool = True, port: int | None = None) -> None:
        self.handler = handler or Handler()
        self.port = port or free_port()
        self.security = security
        self.auth = auth
        options: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "server_hostname": "relay.test"}
        smtp: dict[str, Any] = {}
        if auth:
            smtp.update(authenticator=Authenticator(), auth_required=True)
        if security == "starttls":
            assert certificates is not None
            smtp.update(tls_context=certificates.server_context(), require_starttls=True)
        elif security == "tls":
            assert certificates is not None
            options["ssl_context"] = certificates.server_context()
            smtp["auth_require_tls"] = False  # aiosmtpd knows only STARTTLS as TLS; this socket is TLS from the start
        self._options = {**options, **smtp}
        self.controller = Controller(self.handler, **self._options)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def restart(self) -> None:
        """Stop and start again on the same port: every open connection is dropped."""
        self.controller.stop()
        self.controller = Controller(self.handler, **self._options)
        self.controller.start()

    def environment(self, certificates: Certificates | None, *, password: str = PASSWORD) -> dict[str, str]:
        """The settings that point the product's SMTP transport here."""
        env = {"NEWSLETTER_TRANSPORT": "smtp", "NEWSLETTER_SMTP_HOST": "localhost",
               "NEWSLETTER_SMTP_PORT": str(self.port), "NEWSLETTER_SMTP_SECURITY": self.security,
               "NEWSLETTER_SMTP_TIMEOUT": "20"}
        if certificates is not None:
            env["NEWSLETTER_SMTP_CA_FILE"] = str(certificates.ca_file)
        if self.auth:
            env.update(NEWSLETTER_SMTP_USERNAME=USER, NEWSLETTER_SMTP_PASSWORD=password)
        return env
