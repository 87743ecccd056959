"""The SES transport's own cost: one batch of N personalised messages through ``SesTransport.send`` to
the SES v2 stand-in (tests/ses_fake.py, in a process of its own, checking every call's SigV4
signature), beside the floor: the same messages built by ``each_message`` and sent by a bare boto3
``sesv2`` client from a thread pool of the same size, with none of the transport's bookkeeping.

    .venv/bin/python bench/ses_transport.py [--recipients 1000] [--concurrency 8] [--repeat 3] [--summary-json PATH]

Figure and floor are messages per second (median of the repeats, alternating); the target is that
the transport reaches at least 80% of the floor.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench.summary import Row, add_summary_argument, write_summary  # noqa: E402

TARGET_SHARE = 0.8


def _serve(keys: tuple[str, str], ready: Any) -> None:
    from tests.ses_fake import FakeSes

    fake = FakeSes(record=False)
    fake.access_key, fake.secret_key = keys
    fake.start()
    ready.send(fake.url)
    while True:
        time.sleep(3600)


def _batch(count: int, settings: Any) -> Any:
    from newsletter.compose.render import CompiledEmail
    from newsletter.transports.base import Batch, Recipient
    from newsletter.urls import DeliveryLinks

    links = DeliveryLinks(settings)
    html = "<html><body><p>Hello %%first_name%%,</p>" + "<p>Walk a little every day.</p>" * 40 + "</body></html>"
    text = "Hello %%first_name%%,\n\n" + "Walk a little every day.\n" * 40
    email = CompiledEmail("Small steps for steadier days", "Habits for the week", html, text)
    recipients = []
    for n in range(count):
        values, mailto = links.values(n + 1, f"Reader {n}")
        recipients.append(Recipient(f"reader{n}@example.org", f"Reader {n}", values, mailto, str(n + 1)))
    return Batch(email, recipients, [], marker="0123456789abcdef0123456789abcdef")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1000, help="one batch: at most 1000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    add_summary_argument(parser)
    args = parser.parse_args()

    import secrets

    keys = ("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    receiving, sending = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(keys, sending), daemon=True)
    server.start()
    url = receiving.recv()
    os.environ.update({
        "AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1], "NEWSLETTER_TRANSPORT": "ses",
        "NEWSLETTER_SES_REGION": "us-east-1", "NEWSLETTER_SES_CONFIGURATION_SET": "clinic-news",
        "NEWSLETTER_SES_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:clinic-ses-events",
        "NEWSLETTER_SES_ENDPOINT_URL": url, "NEWSLETTER_SES_CONCURRENCY": str(args.concurrency),
        "NEWSLETTER_VAR_DIR": tempfile.mkdtemp(prefix="ses-bench-"),
    })
    import boto3
    from botocore.config import Config

    from newsletter.config import get_settings
    from newsletter.transports.base import BatchResult, each_message
    from newsletter.transports.ses import SesTransport, aws_credentials

    settings = get_settings()
    batch = _batch(args.recipients, settings)
    transport = SesTransport(settings)
    bare = boto3.session.Session(**aws_credentials(settings)).client(
        "sesv2", region_name="us-east-1", endpoint_url=url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=args.concurrency))

    def floor_run() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            answers = list(pool.map(lambda item: bare.send_email(
                FromEmailAddress=settings.from_email, Destination={"ToAddresses": [batch.recipients[item[0]].email]},
                Content={"Raw": {"Data": item[1].as_bytes()}}, ConfigurationSetName="clinic-news",
                EmailTags=[{"Name": "delivery_id", "Value": str(item[0] + 1)}]),
                each_message(batch, settings, BatchResult())))
        assert len(answers) == args.recipients
        return args.recipients / (time.perf_counter() - started)

    def transport_run() -> float:
        started = time.perf_counter()
        result = transport.send(batch)
        assert len(result.accepted) == args.recipients and not (result.refused or result.unknown or result.unsent)
        return args.recipients / (time.perf_counter() - started)

    figures, floors = [], []
    for _ in range(args.repeat):
        floors.append(floor_run())
        figures.append(transport_run())
    server.terminate()
    figure, floor = statistics.median(figures), statistics.median(floors)
    print(f"{'what':48} {'messages/s':>11}")
    print(f"{'SesTransport.send, ' + str(args.concurrency) + ' in flight':48} {figure:11.0f}")
    print(f"{'floor: each_message + bare boto3, same pool':48} {floor:11.0f}")
    print(f"share of floor: {figure / floor:.0%} (target >= {TARGET_SHARE:.0%})")
    write_summary(args.summary_json, [Row(
        "ses_transport", f"send {args.recipients:,} through SES's API, {args.concurrency} in flight", figure,
        "messages/s", floor, "each_message + bare boto3 sesv2 client, same thread pool",
        f">= {TARGET_SHARE:.0%} of floor", figure >= TARGET_SHARE * floor)])


if __name__ == "__main__":
    main()
