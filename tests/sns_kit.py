"""Amazon SNS as the tests play it: a signing key and certificate, signed messages, and an HTTPS server
on loopback that serves the certificate and answers SubscribeURL confirmations.

The server presents a certificate for ``sns.us-east-1.amazonaws.com`` issued by a test CA (trustme);
``getter()`` is the app's own ``HttpsGetter`` told to connect to that server and to trust that CA, and
is handed to the app's ``SnsVerifier`` (the one seam: the URL rules are the production ones). The
canonical string is written here independently of ``newsletter.tracking.sns``, from SNS's documentation.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import quote

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.tracking.sns import HttpsGetter

REGION = "us-east-1"
HOST = f"sns.{REGION}.amazonaws.com"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:clinic-ses-events"
CERT_PATH = f"/SimpleNotificationService-{secrets.token_hex(16)}.pem"
CERT_URL = f"https://{HOST}{CERT_PATH}"
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")


def _signing_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


class FakeSns:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = _signing_certificate(self.key)
        self.ca = trustme.CA()
        self.fetches: list[str] = []  # paths GET from the server, in order
        self._server: ThreadingHTTPServer | None = None

    # The HTTPS server ---------------------------------------------------------------------------

    def start(self) -> Self:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(HOST, "sns.us-west-2.amazonaws.com").configure_cert(context)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                fake.fetches.append(self.path)
                if self.path == CERT_PATH:
                    body, status = fake.certificate, 200
                elif self.path.startswith("/?Action=ConfirmSubscription"):
                    body, status = b"<ConfirmSubscriptionResponse/>", 200
                else:
                    body, status = b"not found", 404
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def getter(self) -> HttpsGetter:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        assert self._server is not None
        return HttpsGetter(context=context, connect_to=("127.0.0.1", self._server.server_address[1]), timeout=5)

    # Messages -----------------------------------------------------------------------------------

    def sign(self, data: dict[str, Any], *, version: str = "1", key: rsa.RSAPrivateKey | None = None) -> dict[str, Any]:
        keys = _NOTIFICATION_KEYS if data["Type"] == "Notification" else _SUBSCRIPTION_KEYS
        canonical = "".join(f"{k}\n{data[k]}\n" for k in keys if k in data).encode()
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(canonical, padding.PKCS1v15(), algorithm)
        return {**data, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode(),
                "SigningCertURL": data.get("SigningCertURL", CERT_URL)}

    def notification(self, event: dict[str, Any], *, version: str = "1", topic: str = TOPIC,
                     message_id: str | None = None, cert_url: str = CERT_URL) -> dict[str, Any]:
        data = {"Type": "Notification", "MessageId": message_id or str(uuid.uuid4()), "TopicArn": topic,
                "Message": json.dumps(event), "Timestamp": _now(), "SigningCertURL": cert_url,
                "UnsubscribeURL": f"https://{HOST}/?Action=Unsubscribe&SubscriptionArn={topic}:x"}
        return self.sign(data, version=version)

    def subscription_confirmation(self, *, topic: str = TOPIC, confirm_topic: str | None = None) -> dict[str, Any]:
        token = secrets.token_hex(32)
        url = (f"https://{HOST}/?Action=ConfirmSubscription&TopicArn={quote(confirm_topic or topic, safe='')}"
               f"&Token={token}")
        data = {"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token, "TopicArn": topic,
                "Message": f"You have chosen to subscribe to the topic {topic}.", "SubscribeURL": url,
                "Timestamp": _now()}
        return self.sign(data, version="2")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ses_event(kind: str, *, message_id: str, to: str, delivery_id: str | None = None,
              **details: Any) -> dict[str, Any]:
    """An SES event as a configuration set publishes it (the mail part, and the event's own)."""
    tags: dict[str, list[str]] = {"ses:configuration-set": ["clinic-news"]}
    if delivery_id is not None:
        tags["delivery_id"] = [delivery_id]
    mail = {"timestamp": _now(), "source": "newsletter@example.com", "messageId": message_id, "destination": [to],
            "headersTruncated": False, "commonHeaders": {"subject": "Small steps for steadier days"}, "tags": tags}
    key = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery", "Send": "send",
           "DeliveryDelay": "deliveryDelay", "Reject": "reject"}[kind]
    return {"eventType": kind, "mail": mail, key: {"timestamp": _now(), **details}}
