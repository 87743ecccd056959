"""Amazon SNS HTTPS messages: verified before anything in them is believed.

SNS signs every message it posts: the canonical string of the message's fields (``Key\\nValue\\n`` for
each signed key, in byte order of the key names, ``Subject`` only when present) is signed with the
private key of a certificate SNS publishes at ``SigningCertURL``; ``SignatureVersion`` 1 is
SHA1withRSA, 2 is SHA256withRSA. A message is accepted only when:

- its ``TopicArn`` is ``NEWSLETTER_SES_SNS_TOPIC_ARN``, exactly;
- its ``SigningCertURL`` is ``https://sns.<region>.amazonaws.com[.cn]/SimpleNotificationService-<hex>.pem``,
  the region being the topic's own (no other host, port, user, query or path: a signature under a
  certificate someone else chose proves nothing);
- the certificate fetched from there (over TLS, checked against the system's trust store), valid today,
  verifies the signature over the canonical string.

Certificates are cached by URL (SNS uses one for months). The HTTPS getter is a parameter of the
verifier, not a setting: the tests hand in one that connects to their own loopback server and trusts
their own CA, while the host rule above still applies to every URL; nothing in the environment can
point production at another certificate.

A ``SubscriptionConfirmation`` for the configured topic is confirmed by fetching its ``SubscribeURL``
(the same host rule, ``Action=ConfirmSubscription`` for that topic).
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
OPTIONAL_KEYS = frozenset({"Subject"})
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SNS_HOST = re.compile(r"^sns\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2})\.amazonaws\.com(?:\.cn)?$")
CERT_PATH = re.compile(r"^/SimpleNotificationService-[0-9a-f]{16,64}\.pem$")
TOPIC_REGION = re.compile(r"^arn:aws(?:-[a-z]+)*:sns:(?P<region>[^:]+):")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")
MAX_CERT_BYTES = 64 * 1024
MAX_CACHED = 16
FETCH_TIMEOUT = 10.0


class SnsRefused(Exception):
    """The message is not to be believed (403), or could not be checked now (503: SNS tries again)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None


class HttpsGetter:
    """GET an https URL's body, at most ``MAX_CERT_BYTES``, no redirects. ``context`` is the TLS trust
    (default: the system's); ``connect_to`` (tests only, passed in code) is the address to connect
    to instead of the URL host's, whose name the certificate must still carry."""

    def __init__(self, *, context: ssl.SSLContext | None = None, connect_to: tuple[str, int] | None = None,
                 timeout: float = FETCH_TIMEOUT) -> None:
        self.context = context or ssl.create_default_context()
        self.connect_to = connect_to
        self.timeout = timeout

    def __call__(self, url: str) -> bytes:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.hostname  # the verifier checked the URL first
        connection = http.client.HTTPSConnection(parts.hostname, 443, timeout=self.timeout, context=self.context)
        if self.connect_to is not None:
            address = self.connect_to
            connection._create_connection = (  # type: ignore[attr-defined]
                lambda _address, timeout, source: socket.create_connection(address, timeout, source))
        try:
            connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                               headers={"Accept": "*/*"})
            response = connection.getresponse()
            body = response.read(MAX_CERT_BYTES + 1)
        finally:
            connection.close()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        if len(body) > MAX_CERT_BYTES:
            raise OSError("the answer is too large")
        return body


class SnsVerifier:
    def __init__(self, topic_arn: str, *, get: Callable[[str], bytes] | None = None) -> None:
        region = TOPIC_REGION.match(topic_arn)
        if region is None:
            raise ValueError("NEWSLETTER_SES_SNS_TOPIC_ARN is not an SNS topic ARN")
        self.topic_arn = topic_arn
        self.region = region["region"]
        self.get = get or HttpsGetter()
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, data: Any) -> SnsMessage:
        """The message, once its topic, certificate URL and signature are right; else ``SnsRefused``."""
        if not isinstance(data, dict):
            raise SnsRefused(403, "not an SNS message")
        kind = data.get("Type")
        if kind not in SIGNED_KEYS:
            raise SnsRefused(403, "not an SNS message type that is accepted here")
        for key in (*SIGNED_KEYS[kind], "Signature", "SignatureVersion", "SigningCertURL"):
            value = data.get(key)
            if value is None and key in OPTIONAL_KEYS:
                continue
            if not isinstance(value, str) or (not value and key not in ("Message", "Subject")):
                raise SnsRefused(403, f"the SNS message has no {key}: it is not signed")
        if data["TopicArn"] != self.topic_arn:
            raise SnsRefused(403, "the message is from another SNS topic than NEWSLETTER_SES_SNS_TOPIC_ARN")
        if not MESSAGE_ID.match(data["MessageId"]):
            raise SnsRefused(403, "the SNS MessageId is not an SNS message id")
        algorithm = HASHES.get(data["SignatureVersion"])
        if algorithm is None:
            raise SnsRefused(403, "unknown SNS SignatureVersion (1 and 2 are accepted)")
        self.check_sns_url(data["SigningCertURL"], path=CERT_PATH)
        try:
            signature = base64.b64decode(data["Signature"], validate=True)
        except ValueError:
            raise SnsRefused(403, "the SNS Signature is not base64") from None
        key = self._key(data["SigningCertURL"])
        try:
            key.verify(signature, canonical_string(data), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRefused(403, "the SNS signature does not match the message") from None
        return SnsMessage(kind, data["MessageId"], data["TopicArn"], data["Message"], data.get("SubscribeURL"))

    def check_sns_url(self, url: str, *, path: re.Pattern[str] | None = None) -> None:
        """https, on this topic's region's SNS host, nothing else in the URL that could send us elsewhere."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise SnsRefused(403, "an SNS URL that is not a URL") from None
        host = SNS_HOST.match(parts.hostname or "") if parts.netloc == parts.hostname else None
        if parts.scheme != "https" or host is None or port is not None or parts.fragment:
            raise SnsRefused(403, "an SNS URL not on https://sns.<region>.amazonaws.com")
        if host["region"] != self.region:
            raise SnsRefused(403, "an SNS URL in another region than the topic's")
        if path is not None and (not path.match(parts.path) or parts.query):
            raise SnsRefused(403, "an SNS certificate URL that is not SNS's certificate")

    def _key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
        try:
            pem = self.get(url)
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            raise SnsRefused(503, f"the SNS signing certificate could not be fetched ({type(error).__name__})") from None
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise SnsRefused(403, "the SNS signing certificate is not a PEM certificate") from None
        now = datetime.now(timezone.utc)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsRefused(403, "the SNS signing certificate is not valid today")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRefused(403, "the SNS signing certificate has no RSA key")
        with self._lock:
            self._keys[url] = key
            while len(self._keys) > MAX_CACHED:
                self._keys.popitem(last=False)
        return key

    def confirm(self, message: SnsMessage) -> None:
        """Confirm the subscription: GET its SubscribeURL, when it asks SNS to confirm this very topic."""
        url = message.subscribe_url or ""
        self.check_sns_url(url)
        query = parse_qs(urlsplit(url).query)
        if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [self.topic_arn]:
            raise SnsRefused(403, "the SubscribeURL does not confirm NEWSLETTER_SES_SNS_TOPIC_ARN")
        try:
            self.get(url)
        except (OSError, http.client.HTTPException, ssl.SSLError) as error:
            raise SnsRefused(503, f"the subscription could not be confirmed ({type(error).__name__})") from None


def canonical_string(data: dict[str, Any]) -> bytes:
    """What SNS signs: ``Key\\nValue\\n`` for each of the type's keys present, in order."""
    parts = []
    for key in SIGNED_KEYS[data["Type"]]:
        if key in OPTIONAL_KEYS and data.get(key) is None:
            continue
        parts.append(f"{key}\n{data[key]}\n")
    return "".join(parts).encode("utf-8")
