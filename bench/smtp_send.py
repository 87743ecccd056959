"""Messages per second through the SMTP transport to an SMTP server on loopback, next to smtplib.

An aiosmtpd server (tests/smtp_server.py: STARTTLS required, AUTH PLAIN/LOGIN over TLS, PIPELINING
offered, a throwaway CA) runs in a process of its own, so it does not share the sender's GIL. It
counts what it takes and keeps nothing.

- figure: ``SmtpTransport.send`` given pre-built batches of 1,000 recipients (the recipients' values
  and links made beforehand, as the dispatcher makes them): the transport builds each recipient's MIME
  message (``MessageTemplate``, exactly as in production) and sends it over
  ``NEWSLETTER_SMTP_CONNECTIONS`` pooled connections (default 4), pipelined. The ledger is not in it.
- floor: smtplib bare, one connection, lock-step (``sendmail``), the same message bytes built
  beforehand (not timed): the wire alone.
- second floor: the same with ``TCP_NODELAY`` set on smtplib's socket. Bare smtplib writes a message
  and waits for its answer while Nagle's algorithm holds the message's last TLS record for the
  server's delayed ACK (about 40 ms a message on Linux loopback); the transport sets ``TCP_NODELAY``.
  This floor is one lock-step connection without that stall and without building anything.

- building alone, each recipient's message as bytes: ``MessageTemplate.message`` (what the transport
  does) against its floor, the email package building the same messages (``build_message`` +
  ``as_bytes``, the reference it must equal). Target: building faster than the wire (the transport at
  or above smtplib with TCP_NODELAY).

Median of ``--repeat`` runs each, interleaved. Target: the transport at least the bare smtplib rate.

    .venv/bin/python bench/smtp_send.py [--messages 2000] [--connections 4] [--repeat 3] [--summary-json PATH]
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench.summary import Row, add_summary_argument, write_summary  # noqa: E402

BATCH = 1000


def serve(port: int, folder: Path) -> None:
    """The server process: aiosmtpd with the kit's TLS and AUTH, counting messages only."""
    from tests.smtp_server import Certificates, SmtpServer

    class Counting:
        count = 0

        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
            session.host_name = hostname
            responses.insert(-1, "250-PIPELINING")
            return responses

        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
            Counting.count += 1
            return f"250 2.0.0 Ok: queued as B{Counting.count:08d}"

    with SmtpServer(Certificates(folder), handler=Counting(), port=port):  # type: ignore[arg-type]
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "FOLDER"), help=argparse.SUPPRESS)
    add_summary_argument(parser)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return

    from tests.smtp_server import PASSWORD, USER, free_port

    folder = Path(tempfile.mkdtemp(prefix="smtp-bench-"))
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        os.environ.update({
            "NEWSLETTER_VAR_DIR": str(folder / "var"), "NEWSLETTER_TRANSPORT": "smtp",
            "NEWSLETTER_SMTP_HOST": "localhost", "NEWSLETTER_SMTP_PORT": str(port),
            "NEWSLETTER_SMTP_USERNAME": USER, "NEWSLETTER_SMTP_PASSWORD": PASSWORD,
            "NEWSLETTER_SMTP_CA_FILE": str(folder / "smtp-test-ca.pem"),
            "NEWSLETTER_SMTP_CONNECTIONS": str(args.connections),
        })
        rows = measure(args.messages, args.repeat, args.connections, folder)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    write_summary(args.summary_json, rows)


def measure(count: int, repeat: int, connections: int, folder: Path) -> list[Row]:
    from newsletter.compose.mime import build_message
    from newsletter.compose.mime_template import MessageTemplate
    from newsletter.config import Settings
    from newsletter.transports.base import Batch, Recipient
    from newsletter.transports.smtp import SmtpTransport, tls_context
    from newsletter.urls import DeliveryLinks

    settings = Settings()
    email = sample_email(settings, folder)
    links = DeliveryLinks(settings)
    recipients = []
    for n in range(count):
        values, mailto = links.values(n + 1, f"Reader {n}")
        recipients.append(Recipient(f"reader{n}@example.org", f"Reader {n}", values, mailto, str(n + 1)))
    batches = [Batch(email, recipients[i:i + BATCH]) for i in range(0, count, BATCH)]

    def build(recipient: Recipient) -> bytes:
        return build_message(email, to_email=recipient.email, to_name=recipient.name, values=recipient.values,
                             unsubscribe_mailto=recipient.unsubscribe_mailto, settings=settings).as_bytes()

    def fast_build_run() -> float:
        started = time.perf_counter()
        template = MessageTemplate(email, settings)  # once per batch in the transport; once here
        for r in recipients:
            template.message(to_email=r.email, to_name=r.name, values=r.values, unsubscribe_mailto=r.unsubscribe_mailto)
        return count / (time.perf_counter() - started)

    def reference_build_run() -> tuple[float, list[bytes]]:
        started = time.perf_counter()
        built = [build(r) for r in recipients]
        return count / (time.perf_counter() - started), built

    build_rates, fast_rates = [], []
    for _ in range(repeat):  # building alone: the sender's CPU ceiling, both ways, interleaved
        rate, built = reference_build_run()
        build_rates.append(rate)
        fast_rates.append(fast_build_run())
    build_rate, fast_rate = statistics.median(build_rates), statistics.median(fast_rates)
    size = statistics.mean(len(b) for b in built)

    def transport_run() -> float:
        transport = SmtpTransport(settings)
        started = time.perf_counter()
        accepted = sum(len(transport.send(batch).accepted) for batch in batches)
        elapsed = time.perf_counter() - started
        transport.close()
        assert accepted == count, f"{accepted} of {count} accepted"
        return count / elapsed

    def bare_run(*, nodelay: bool) -> float:
        assert settings.smtp_port is not None and settings.smtp_password is not None
        client = smtplib.SMTP("localhost", settings.smtp_port, timeout=60)
        if nodelay:
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.starttls(context=tls_context(settings.smtp_ca_file))
        client.login(str(settings.smtp_username), settings.smtp_password.get_secret_value())
        started = time.perf_counter()
        for recipient, data in zip(recipients, built):
            client.sendmail(settings.from_email, [recipient.email], data)
        elapsed = time.perf_counter() - started
        client.quit()
        return count / elapsed

    ours, bare, bare_nodelay = [], [], []
    for _ in range(repeat):  # interleaved: a busy moment of the machine falls on each alike
        ours.append(transport_run())
        bare.append(bare_run(nodelay=False))
        bare_nodelay.append(bare_run(nodelay=True))
    figure, floor, floor_nodelay = (statistics.median(x) for x in (ours, bare, bare_nodelay))
    print(f"{count:,} messages of {size / 1024:.1f} KiB, STARTTLS + AUTH to aiosmtpd on loopback "
          f"(its own process), median of {repeat}:")
    print(f"  building alone, email package (build_message + as_bytes):           {build_rate:8.0f} messages/s")
    print(f"  building alone, MessageTemplate (what the transport does):         {fast_rate:8.0f} messages/s "
          f"({fast_rate / build_rate:.1f}x the email package, {fast_rate / floor_nodelay:.1f}x smtplib + TCP_NODELAY)")
    print(f"  SMTP transport, {connections} connections, pipelined, building each message: {figure:8.0f} messages/s")
    print(f"  smtplib bare, 1 connection, lock-step, same bytes pre-built:        {floor:8.0f} messages/s "
          f"(transport {figure / floor:.2f}x)")
    print(f"  smtplib + TCP_NODELAY, 1 connection, lock-step, same bytes pre-built: {floor_nodelay:6.0f} messages/s "
          f"(transport {figure / floor_nodelay:.2f}x)")
    what = f"SMTP transport, {count:,} messages, {connections} connections, pipelined (builds each message)"
    return [
        Row("smtp_send", what, round(figure, 1), "messages/s", round(floor, 1),
            "smtplib bare, 1 connection, lock-step, same bytes pre-built", ">= 1.0x floor", figure >= floor),
        Row("smtp_send", what + " vs smtplib without the delayed-ACK stall", round(figure, 1), "messages/s",
            round(floor_nodelay, 1), "smtplib + TCP_NODELAY, 1 connection, lock-step, same bytes pre-built",
            ">= 1.0x floor", figure >= floor_nodelay),
        Row("smtp_send", f"building alone, {count:,} messages of {size / 1024:.1f} KiB: MessageTemplate", round(fast_rate, 1),
            "messages/s", round(build_rate, 1), "the email package building the same messages (build_message + as_bytes)",
            ">= 1.0x floor", fast_rate >= build_rate),
        Row("smtp_send", f"building alone, {count:,} messages: MessageTemplate vs the wire", round(fast_rate, 1),
            "messages/s", round(floor_nodelay, 1), "smtplib + TCP_NODELAY, 1 connection, lock-step, same bytes pre-built",
            ">= 1.0x floor", fast_rate >= floor_nodelay),
    ]


def sample_email(settings: object, folder: Path):  # noqa: ANN201 - a CompiledEmail
    """A real issue's compiled email (the tests' sample post, compiled and tracked by the product)."""
    from newsletter.compose.render import CompiledEmail
    from newsletter.database import Database, upgrade
    from newsletter.models import Issue
    from tests.sendkit import make_issue

    db = Database.from_settings(settings)  # type: ignore[arg-type]
    upgrade(db.engine)
    issue_id = make_issue(db, settings)  # type: ignore[arg-type]
    with db.session() as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None
        return CompiledEmail(issue.subject, issue.preheader, issue.html, issue.text)


if __name__ == "__main__":
    main()
