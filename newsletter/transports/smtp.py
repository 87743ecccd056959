"""SMTP: each recipient's own message through a mail server or relay (one that signs a Business
Associate Agreement: Paubox, LuxSci, Amazon SES's SMTP interface, the clinic's own relay).

Each recipient gets the whole personalised message the outbox transport writes
(``newsletter.compose.mime.build_message``: List-Unsubscribe and List-Unsubscribe-Post, the tracked
links, the footer), one SMTP transaction each, the envelope sender being ``NEWSLETTER_FROM_EMAIL``.

Several connections are in flight at once (``NEWSLETTER_SMTP_CONNECTIONS``, one thread each), kept
open between batches: a kept connection is asked NOOP before its next batch and opened again when the
server has dropped it, so a dead idle connection is never mistaken for a message whose answer was lost.
When the server offers PIPELINING (RFC 2920), MAIL FROM, RCPT TO and DATA go in one write and their
three replies are read after it; without it, one command per reply.

The exchange is written over ``smtplib``'s connection (it connects, upgrades to TLS, authenticates,
sends bytes and reads replies) because smtplib does not pipeline, and aiosmtplib, the maintained asyncio
client, sends its envelope commands one reply at a time too and would put an event loop inside the
dispatcher's threads for no gain. Certificates are always verified (the system's CAs, plus
``NEWSLETTER_SMTP_CA_FILE`` when set).

What each message's replies mean, per recipient (``BatchResult``; the dispatcher owns the policy):

- the final 250 after the message: accepted, with the id the server's reply names (Postfix's
  "queued as ...", Amazon SES's message id) or else the message's own Message-ID;
- a 5xx to RCPT TO: refused; 550/551/553 refuse the address itself, which goes on the suppression
  list; a 5xx to MAIL FROM, DATA or after the message: refused, the address is not blamed;
- a 4xx (except 421): deferred, the recipient is tried again later;
- 421, a dropped connection or a timeout before the message's final dot left: unsent, safe to send
  again (the connection is opened afresh once; what is left goes back to the queue);
- the final dot left and no reply came (dropped, timed out, garbled): unknown, never sent again blindly.

Nothing stored or logged names an address or the password: the server's words are scrubbed of
anything shaped like an address.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

from newsletter.config import Settings
from newsletter.transports.base import (
    AuthenticationFailed,
    Batch,
    BatchResult,
    TemporaryFailure,
    TransportError,
    each_message_bytes,
    scrub,
)
from subscribers.contacts import ascii_address

log = logging.getLogger("newsletter.smtp")

ADDRESS_REFUSED = frozenset({550, 551, 553})  # RCPT TO: mailbox unavailable, not local, name not allowed
SERVICE_CLOSING = 421
MAX_REPLY_CHARS = 300  # of the server's words kept in a reason
RECONNECTS_PER_BATCH = 2  # per connection: a server that keeps dropping it is not chased further
CREDENTIALS = "NEWSLETTER_SMTP_USERNAME and NEWSLETTER_SMTP_PASSWORD"

_ENHANCED_CODE = re.compile(r"^\d\.\d{1,3}\.\d{1,3}\s*")
_QUEUE_ID = re.compile(r"(?:queued as|id=)\s*<?([^\s<>]+)>?", re.IGNORECASE)
_ID_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=/-]{3,199}$")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


class InsecureConnection(AuthenticationFailed):
    """The server would not give a verified TLS channel (no STARTTLS offered, a certificate that does
    not verify): nothing is sent, and sending stops until staff fix the server or the settings."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fix="NEWSLETTER_SMTP_HOST, NEWSLETTER_SMTP_SECURITY or NEWSLETTER_SMTP_CA_FILE")


class _Lost(Exception):
    """The connection was lost before the message's final dot left: it was not sent."""


@dataclass(frozen=True)
class Reply:
    code: int
    text: str  # scrubbed of anything shaped like an address, short

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


def tls_context(ca_file: object | None) -> ssl.SSLContext:
    """Verified TLS (1.2 or later): the system's CAs, plus the extra bundle when one is set."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def provider_id(reply_text: str) -> str | None:
    """The id a server's final 250 names: "2.0.0 Ok: queued as 4C1F2" (Postfix), "OK id=1a2b3c-0004"
    (Exim), "Ok 0100018c...-000000" (Amazon SES: its message id, which its events carry)."""
    text = _ENHANCED_CODE.sub("", reply_text.strip())
    found = _QUEUE_ID.search(text)
    if found:
        token = found.group(1)
    else:
        words = text.split()
        if len(words) != 2 or words[0].rstrip(":").lower() not in ("ok", "queued", "accepted"):
            return None
        token = words[1].strip("<>")
    return token if _ID_TOKEN.match(token) else None


def message_bytes(message: bytes) -> bytes:
    """The message (CRLF lines) as DATA carries it: a leading dot doubled, ended by a line holding a dot."""
    data = _LEADING_DOT.sub(b"..", message)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@lru_cache(maxsize=1)
def _local_name() -> str:
    return socket.getfqdn()  # looked up once: it can take a DNS round trip


class Connection:
    """One open, authenticated SMTP connection."""

    def __init__(self, smtp: smtplib.SMTP) -> None:
        self.smtp = smtp
        self.pipelining = smtp.has_extn("pipelining")
        self.size_limit = _size_limit(smtp)
        self.alive = True

    def alive_after_idle(self) -> bool:
        """NOOP answered with 250: the server has not dropped this connection while it sat idle."""
        try:
            return self.smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def transaction(self, sender: str, recipient: str, data: bytes) -> tuple[str, str, bool]:
        """One message to one recipient: ("accepted", message id or "", False), ("refused", reason,
        address refused), ("deferred", reason, False) or ("unknown", reason, False). Raises ``_Lost``
        when it did not leave."""
        size = f" SIZE={len(data)}" if self.size_limit is not None else ""
        commands = (f"MAIL FROM:<{sender}>{size}", f"RCPT TO:<{recipient}>", "DATA")
        if self.pipelining:
            self._write("".join(f"{c}\r\n" for c in commands).encode("ascii"))
            mail, rcpt, data_reply = (self._reply(), self._reply(), self._reply())
            if data_reply.code == 354 and not (_ok(mail) and _ok(rcpt)):
                # RFC 2920: DATA was accepted though the envelope was not; an empty message ends it.
                self._write(b".\r\n")
                self._reply()
        else:
            mail = self._command(commands[0])
            rcpt = self._command(commands[1]) if _ok(mail) else None
            data_reply = self._command(commands[2]) if rcpt is not None and _ok(rcpt) else None
        for stage, reply in (("MAIL FROM", mail), ("RCPT TO", rcpt), ("DATA", data_reply)):
            if reply is None:
                break
            if stage == "DATA" and reply.code == 354:
                return self._message(data)
            if not _ok(reply) or stage == "DATA":
                self._reset_after(reply)
                return _judge(stage, reply)
        raise AssertionError("unreachable: a failed envelope step returned above")

    def _message(self, data: bytes) -> tuple[str, str, bool]:
        self._write(data)  # raises _Lost: the final dot did not (wholly) leave
        try:
            reply = self._reply()
        except _Lost as lost:
            self.alive = False
            return "unknown", f"no answer from the mail server after the message was sent: {lost}; it may have " \
                              "been accepted", False
        if 200 <= reply.code < 300:
            return "accepted", provider_id(reply.text) or "", False
        if reply.code == SERVICE_CLOSING:
            self.close()
            return "deferred", f"the mail server deferred this message ({reply})", False
        if 400 <= reply.code < 600:
            return _judge("the end of the message", reply)
        self.alive = False  # a garbled final reply: whether it was taken cannot be told
        return "unknown", f"an answer the mail server should not give after a message ({reply})", False

    def _reset_after(self, reply: Reply) -> None:
        if reply.code == SERVICE_CLOSING:
            self.close()
            raise _Lost(f"the mail server is closing the connection ({reply})")
        self._command("RSET")

    def _command(self, command: str) -> Reply:
        self._write(f"{command}\r\n".encode("ascii"))
        return self._reply()

    def _write(self, data: bytes) -> None:
        try:
            self.smtp.sock.sendall(data)  # type: ignore[union-attr]
        except (OSError, AttributeError) as exc:
            self.close()
            raise _Lost(f"the connection was lost ({_reason(exc)})") from None

    def _reply(self) -> Reply:
        try:
            code, text = self.smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise _Lost(f"the connection was lost ({_reason(exc)})") from None
        if code == -1:
            self.close()
            raise _Lost("the mail server gave an answer that is not SMTP")
        return Reply(code, scrub(text.decode("utf-8", "replace"))[:MAX_REPLY_CHARS])

    def quit(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass
        self.close()

    def close(self) -> None:
        self.alive = False
        try:
            self.smtp.close()
        except OSError:
            pass


def _ok(reply: Reply) -> bool:
    return 200 <= reply.code < 300


def _judge(stage: str, reply: Reply) -> tuple[str, str, bool]:
    """What a negative reply at ``stage`` means for this recipient."""
    if reply.code == SERVICE_CLOSING or not 400 <= reply.code < 600:
        raise _Lost(f"the mail server answered {reply} to {stage}")
    if reply.code < 500:
        return "deferred", f"the mail server deferred this recipient at {stage} ({reply})", False
    return "refused", f"refused by the mail server at {stage} ({reply})", \
        stage == "RCPT TO" and reply.code in ADDRESS_REFUSED


def _size_limit(smtp: smtplib.SMTP) -> int | None:
    if not smtp.has_extn("size"):
        return None
    value = (smtp.esmtp_features.get("size") or "").strip()
    return int(value) if value.isdigit() else 0


def _reason(error: BaseException) -> str:
    """A short, address-free description of a network error."""
    if isinstance(error, OSError) and error.strerror:
        return f"{type(error).__name__}: {error.strerror}"
    return type(error).__name__


class _Work:
    """A batch's messages, handed out one at a time to the connections sending it; built as they are
    taken (under the lock: building is CPU work the GIL serialises anyway)."""

    def __init__(self, batch: Batch, settings: Settings, result: BatchResult) -> None:
        self.batch = batch
        self._messages = each_message_bytes(batch, settings, result)
        self._lock = threading.Lock()

    def take(self) -> tuple[int, str, bytes, str] | None:
        """The next message: (index in the batch, envelope recipient, DATA bytes, its Message-ID)."""
        with self._lock:
            item = next(self._messages, None)
        if item is None:
            return None
        index, message_id, message = item
        return (index, ascii_address(self.batch.recipients[index].email), message_bytes(message), message_id)


class SmtpTransport:
    """Sends each batch's messages over up to ``NEWSLETTER_SMTP_CONNECTIONS`` pooled connections."""

    name = "smtp"
    max_batch = 1000

    def __init__(self, settings: Settings) -> None:
        if settings.smtp_host is None or settings.smtp_port is None:
            raise ValueError("the SMTP transport needs NEWSLETTER_SMTP_HOST")
        self.settings = settings
        ascii_address(settings.from_email)  # an envelope sender that cannot travel is refused at start
        self.host, self.port, self.security = settings.smtp_host, settings.smtp_port, settings.smtp_security
        self.timeout = settings.smtp_timeout
        self.size = settings.smtp_connections
        self._username = settings.smtp_username
        self._password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self._context = None if self.security == "none" else tls_context(settings.smtp_ca_file)
        self._idle: list[Connection] = []
        self._free = self.size  # connection slots not in use by a batch (idle connections hold free slots)
        self._slots = threading.Condition()
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="smtp")

    # The pool ------------------------------------------------------------------------------------

    def _take(self, wanted: int) -> list[Connection | None]:
        """Up to ``wanted`` slots (at least one; waits while every slot is in use by other batches):
        an idle connection each, or None where one is to be opened."""
        with self._slots:
            while self._free == 0:
                self._slots.wait()
            count = min(wanted, self._free)
            self._free -= count
            return [self._idle.pop() if self._idle else None for _ in range(count)]

    def _give(self, connection: Connection | None) -> None:
        with self._slots:
            if connection is not None and connection.alive:
                self._idle.append(connection)
            elif connection is not None:
                connection.close()
            self._free += 1
            self._slots.notify()

    def _ready(self, kept: Connection | None) -> Connection | TransportError:
        """A connection fit to send on: the kept one if it still answers NOOP, else a new one."""
        if kept is not None:
            if kept.alive_after_idle():
                return kept
            log.info("an idle SMTP connection was dropped by the server; opening a new one")
            kept.close()
        try:
            return self.open()
        except TransportError as exc:
            return exc

    def open(self) -> Connection:
        """Connect, upgrade to verified TLS, say EHLO and authenticate. Raises ``TemporaryFailure``
        (no connection), ``InsecureConnection`` or ``AuthenticationFailed``."""
        where = f"{self.host}:{self.port}"
        try:
            if self.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, local_hostname=_local_name(),
                                                      timeout=self.timeout, context=self._context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, local_hostname=_local_name(), timeout=self.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise InsecureConnection(f"the SMTP server at {where} gave a certificate that does not verify "
                                     f"({exc.verify_message})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"the SMTP server at {where} could not be reached ({_reason(exc)})") from None
        try:
            # Each command group and each message is written whole, then answered: Nagle's algorithm
            # would hold a message's last segment for the server's delayed ACK (40 ms a message).
            smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
            self._start(smtp, where)
        except BaseException:
            smtp.close()
            raise
        return Connection(smtp)

    def _start(self, smtp: smtplib.SMTP, where: str) -> None:
        try:
            smtp.ehlo()
            if self.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise InsecureConnection(f"the SMTP server at {where} does not offer STARTTLS; nothing is "
                                             "sent in clear text")
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
        except ssl.SSLCertVerificationError as exc:
            raise InsecureConnection(f"the SMTP server at {where} gave a certificate that does not verify "
                                     f"({exc.verify_message})") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthenticationFailed(f"the SMTP server refused the user name or password ({exc.smtp_code})",
                                       fix=CREDENTIALS) from None
        except smtplib.SMTPNotSupportedError:
            raise AuthenticationFailed(f"the SMTP server at {where} does not offer AUTH over this connection",
                                       fix=CREDENTIALS) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"the SMTP server at {where} broke off the greeting ({_reason(exc)})") from None

    def close(self) -> None:
        """QUIT the idle connections (the end of a process, a test, a benchmark)."""
        with self._slots:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.quit()

    # Sending -------------------------------------------------------------------------------------

    def send(self, batch: Batch) -> BatchResult:
        result = BatchResult()
        if not batch.recipients:
            return result
        slots = self._take(min(self.size, len(batch.recipients)))
        ready = list(self._threads.map(self._ready, slots))
        connections = [c for c in ready if isinstance(c, Connection)]
        problems = [c for c in ready if not isinstance(c, Connection)]
        for _ in problems:
            self._give(None)
        if problems and (not connections or any(isinstance(p, AuthenticationFailed) for p in problems)):
            for connection in connections:  # nothing was sent: the batch goes back whole
                self._give(connection)
            raise next((p for p in problems if isinstance(p, AuthenticationFailed)), problems[0])
        work = _Work(batch, self.settings, result)
        lost = list(self._threads.map(lambda c: self._send_on(c, work, result), connections))
        answered = result.accepted.keys() | result.refused.keys() | result.deferred.keys() | result.unknown.keys()
        for index in range(len(batch.recipients)):  # left over when every connection was lost
            if index not in answered and index not in result.unsent:
                result.unsent[index] = next((why for why in lost if why), "the connection was lost")
        if result.unsent and len(result.unsent) == len(batch.recipients):
            raise TemporaryFailure(f"nothing was sent: {next(iter(result.unsent.values()))}")
        return result

    def _send_on(self, connection: Connection, work: _Work, result: BatchResult) -> str | None:
        """Send messages taken from ``work`` until none is left; returns its slot. Returns why the
        connection was given up, if it was (the messages left are sent by the other connections)."""
        sender = ascii_address(self.settings.from_email)
        reconnects = 0
        current: Connection | None = connection
        try:
            while (item := work.take()) is not None:
                index, recipient, data, message_id = item
                while True:
                    try:
                        outcome, detail, bad_address = current.transaction(sender, recipient, data)
                        break
                    except _Lost as lost:
                        current.close()
                        if reconnects == RECONNECTS_PER_BATCH:
                            result.unsent[index] = str(lost)
                            return str(lost)
                        reconnects += 1
                        log.warning("SMTP connection lost before a message was sent (%s); opening a new one", lost)
                        try:
                            current = self.open()
                        except TransportError as exc:
                            current = None
                            result.unsent[index] = f"{lost}; reconnecting failed: {exc}"
                            return str(exc)
                match outcome:
                    case "accepted":  # the server's id for it, else its own Message-ID
                        result.accepted[index] = detail or message_id
                    case "refused":
                        result.refused[index] = detail
                        if bad_address:
                            result.invalid_addresses.add(index)
                    case "deferred":
                        result.deferred[index] = detail
                    case _:
                        result.unknown[index] = detail
                        log.error("SMTP: a message's answer was lost after it was sent (%s); held as unknown", detail)
                if not current.alive:  # dropped after a final answer or an unknown one: open another for the rest
                    current = self._reopen()
                    if current is None:
                        return "the connection was lost and could not be opened again"
            return None
        finally:
            self._give(current)

    def _reopen(self) -> Connection | None:
        try:
            return self.open()
        except TransportError as exc:
            log.warning("SMTP: a connection could not be opened again (%s)", exc)
            return None
