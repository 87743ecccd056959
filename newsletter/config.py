"""Settings: the one home for configuration (environment variables prefixed ``NEWSLETTER_``, or ``.env``).

The embedded default runs with no setup at all: SQLite under ``./var``. Secrets come only from the
environment (or an uncommitted ``.env``), never from files in the repository.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from newsletter.i18n import N_
from subscribers.errors import InputError

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MIN_RATE_PER_SECOND = 0.0003  # about one email an hour
MIN_SECRET_BYTES = 32
MAKE_A_SECRET = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
SENDGRID_KEY_HOWTO = ("in SendGrid, Settings > Mail Settings > Event Webhook: enable the Signed Event Webhook and copy "
                      "the verification key into SENDGRID_WEBHOOK_PUBLIC_KEY")
UNSIGNED_FOR_DEVELOPMENT = "NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS=true, for development only"


class SettingsError(InputError):
    """The configuration is unusable: one line naming the variable and what to do."""
PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
SES_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
SES_CONFIGURATION_SET = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SNS_TOPIC_ARN = re.compile(r"^arn:aws(-[a-z]+)*:sns:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )
    # Settings with the values staff saved applied (newsletter.stored_settings) remember which fields
    # the environment set: those win over stored values, and a rebuilt copy must still know them.
    _pinned: frozenset[str] | None = PrivateAttr(default=None)

    # Storage
    var_dir: Path = Field(Path("var"), description="Folder for the embedded database and outbox.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<var_dir>/newsletter.db."
    )

    # Sending
    transport: str | None = Field(
        None, description="sendgrid | smtp (a mail server or relay, e.g. one that signs a BAA) | ses (Amazon SES API) | "
                          "outbox (writes .eml files) | memory (tests); default sendgrid when a key is set."
    )
    outbox_dir: Path | None = Field(None, description="Where the outbox transport writes .eml files; default <var_dir>/outbox.")
    health_information_policy: Literal["minimal", "covered"] = Field(
        "minimal", description="minimal | covered: what of contacts' health information may reach the provider. "
        "minimal (every transport's default) also sends no custom field, tag or segment staff marked sensitive; "
        "covered says the clinic has a business associate agreement (BAA) with the transport's provider, so "
        "emails may personalise with those fields. Refused with SendGrid, which signs no BAA.",
    )
    sendgrid_api_key: SecretStr | None = Field(
        None, validation_alias="SENDGRID_API_KEY", description="SendGrid API key (from the environment only)."
    )
    sendgrid_api_host: str = Field(
        "https://api.sendgrid.com", validation_alias="SENDGRID_API_HOST",
        description="SendGrid-compatible API base URL.",
    )
    sendgrid_timeout: float = Field(30.0, gt=0, description="Seconds to wait for SendGrid to answer one request.")
    # The SMTP transport (newsletter.transports.smtp): a relay such as Paubox, LuxSci or Amazon SES's SMTP interface.
    smtp_host: str | None = Field(None, description="The SMTP server's host name (NEWSLETTER_TRANSPORT=smtp).")
    smtp_port: int | None = Field(None, ge=1, le=65535, description="The SMTP server's port; default 587 for "
                                  "starttls, 465 for tls, 25 for none.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (upgrade to TLS before anything else; refused if the server does not "
                                "offer it) | tls (implicit TLS) | none (only to a loopback host: health information "
                                "never crosses a network in clear text).",
    )
    smtp_username: str | None = Field(None, description="SMTP AUTH user name (with NEWSLETTER_SMTP_PASSWORD).")
    smtp_password: SecretStr | None = Field(None, description="SMTP AUTH password (from the environment only; "
                                            "never logged).")
    smtp_connections: int = Field(4, ge=1, le=32, description="SMTP connections in flight at once per sending "
                                  "process, kept open between batches.")
    smtp_timeout: float = Field(60.0, gt=0, le=600, description="Seconds to wait for the SMTP server on any one "
                                "step (connect, a reply, the message's final answer).")
    smtp_ca_file: Path | None = Field(None, description="Extra CA certificates (PEM) to trust for the SMTP server, "
                                      "e.g. a private relay's; certificates are always verified.")
    # Amazon SES (its API; SES's SMTP interface is the smtp transport). Its credentials are the standard
    # AWS variables, read here (environment or .env) and handed to boto3: no profile file, no instance
    # metadata endpoint probed.
    ses_region: str | None = Field(None, description="AWS region of the Amazon SES account (e.g. us-east-1).")
    aws_access_key_id: SecretStr | None = Field(
        None, validation_alias="AWS_ACCESS_KEY_ID", description="The SES transport's AWS access key id (environment only).")
    aws_secret_access_key: SecretStr | None = Field(
        None, validation_alias="AWS_SECRET_ACCESS_KEY", description="Its secret access key (environment only, never logged).")
    aws_session_token: SecretStr | None = Field(
        None, validation_alias="AWS_SESSION_TOKEN", description="Its session token, for temporary credentials only.")
    ses_configuration_set: str | None = Field(
        None, description="SES configuration set every message names; its event destination publishes bounces, "
                          "complaints and deliveries to the SNS topic below.")
    ses_sns_topic_arn: str | None = Field(
        None, description="The SNS topic whose notifications POST /webhooks/ses accepts (any other topic is refused); "
                          "the SES transport will not start without it.")
    ses_concurrency: int = Field(8, ge=1, le=64, description="SendEmail calls in flight at once per sending process "
                                 "(SES takes one message per call).")
    ses_endpoint_url: str | None = Field(
        None, description="Another SES API endpoint (a VPC interface endpoint); unset: the region's public one.")
    ses_timeout: float = Field(30.0, gt=0, description="Seconds to wait for SES to answer one SendEmail call.")

    batch_size: int = Field(1000, ge=1, le=1000, description="Recipients per provider request (SendGrid allows 1000).")
    # Finite: "inf" passed ge=0, and PostgreSQL's JSONB refuses to store Infinity (the settings page's 500).
    rate_per_second: float = Field(0, ge=0, allow_inf_nan=False,
                                   description="Most emails sent per second; 0 means no limit.")
    # Upper bounds past any real use: larger values overflowed where they are used (a LIMIT, a timedelta).
    rate_per_day: int = Field(0, ge=0, le=1_000_000_000, description="Most emails sent per 24 hours; 0 means no limit.")
    send_retries: int = Field(5, ge=0, description="Retries of a batch after a 5xx or connection error; "
                              "also how many times one recipient a mail server deferred (4xx) is tried again.")
    breaker_threshold: int = Field(5, ge=1, description="Failed batches in a row that pause an issue's send.")
    lease_seconds: int = Field(300, ge=10, description="How long a worker's claim on a batch lasts.")
    send_concurrency: int = Field(8, ge=1, le=32, description="Provider requests in flight at once per sending "
                                  "process (each a dispatcher thread): the provider answers a request in a few "
                                  "hundred milliseconds, and the next batches go meanwhile.")

    # Batches held as unknown (a request that left with no answer): what settles them without staff.
    unknown_wait_seconds: int = Field(
        1800, ge=1, description="How long a batch held as unknown waits for the provider's events before the "
                                "activity log is asked (when enabled) and the policy below applies.",
    )
    unknown_policy: Literal["hold", "resend"] = Field(
        "hold", description="After the wait, a batch with no evidence either way: hold (staff are told and settle it) "
                            "or resend (queue its rows again, accepting that some may arrive twice).",
    )
    sendgrid_activity_api: bool = Field(
        False, description="Ask SendGrid's Email Activity API (a paid add-on; the key needs Email Activity access) "
                           "whether a batch held as unknown was accepted.",
    )
    operator_email: str | None = Field(
        None, description="Who is emailed when a batch is held for staff (transactional, no list headers); unset: "
                          "the log line and the CLI status only.",
    )
    recover_seconds: float = Field(
        30.0, gt=0, description="How often an idle worker recovers dead workers' rows and reconciles held batches.",
    )

    frequency_cap_hours: int = Field(
        24, ge=0, le=8760, description="At most one marketing email per contact in this many hours: sequence steps wait (0: off)."
    )

    # Tracking and webhooks
    test_send_limit: int = Field(5, ge=1, le=20, description="The most addresses one test send may go to (from 1 to 20).")
    tracking: str = Field("full", description="Default first-party tracking of new issues and sequences: full | anonymous | off.")
    tracking_log_dir: Path | None = Field(
        None, description="Where each web process appends (and fsyncs) the clicks and opens it answered before they "
                          "reach the events table, in segments the drain moves there; a process that died leaves "
                          "its segment for the drain. Local disk; default <var_dir>/tracking.")
    tracking_drain_process: bool = Field(
        False, description="A 'newsletter tracking-drain' process drains the tracking logs ('newsletter serve' runs "
                           "one and sets this for its web processes); false: each web process drains in a thread.")
    sendgrid_webhook_public_key: SecretStr | None = Field(
        None, validation_alias="SENDGRID_WEBHOOK_PUBLIC_KEY",
        description="SendGrid Event Webhook verification key (base64 ECDSA public key); unset: webhook posts are "
                    "refused (unless allow_unsigned_webhooks) and the SendGrid transport will not start.",
    )
    allow_unsigned_webhooks: bool = Field(
        False, description="Development only: accept unsigned SendGrid webhook posts while "
                           "SENDGRID_WEBHOOK_PUBLIC_KEY is unset (a warning is logged at start-up).",
    )
    webhook_max_age_seconds: int = Field(300, ge=10, description="Oldest signed webhook timestamp accepted.")
    webhook_max_bytes: int = Field(5_000_000, ge=1000, description="Largest webhook body accepted (413 above).")
    bookings_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the bookings webhook (HMAC-SHA256, at least 32 bytes); unset or empty: "
                          "the endpoint is off."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated IPs or networks of reverse proxies whose X-Forwarded-For "
                                          "and X-Forwarded-Proto are believed; empty: none (the peer is the client).",
    )
    attribution_days: int = Field(14, ge=1, description="How far back a booking looks for the email to credit.")
    webhook_timeout: float = Field(10.0, gt=0, le=120, description="Seconds to wait for a CRM endpoint to answer "
                                   "one outgoing webhook request.")
    webhook_retry_hours: int = Field(24, ge=1, le=24 * 7, description="How long an outgoing webhook event is retried; "
                                     "an endpoint whose every attempt failed this long is disabled.")
    webhook_allow_hosts: str = Field(
        "", description="Development and tests only: host names, IP addresses or CIDR networks that outgoing webhook "
        "endpoints may reach although they are not globally reachable; these may also use http://.",
    )

    # Operations
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token that /metrics asks for (at least 32 characters); unset: /metrics is off (404).",
    )

    # Brand: what every email and page shows.
    org_name: str = Field("Limbic Medical", description="Organisation name shown in emails.")
    postal_address: str = Field(
        "100 Example Street, Suite 200, Los Angeles, CA 90001, USA",
        description="Postal address; required in every marketing email (CAN-SPAM).",
    )
    from_email: str = Field("newsletter@example.com", description="From address of every email.")
    from_name: str = Field("Limbic Medical", description="From display name.")
    reply_to: str | None = Field(None, description="Reply-To address, if different from From.")
    logo_url: str | None = Field(None, description="Absolute https URL of the logo image.")
    accent_colour: str = Field("#2f6f6a", description="Brand accent colour (#rrggbb).")
    booking_url: str = Field(
        "https://example.com/book", description="Target of the 'Book a consultation' button."
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000", description="Public base URL of this app (links in emails)."
    )
    newsletter_name: str = Field("The Limbic Letter", description="Name of the newsletter (the list).")
    footer_note: str = Field(
        "This email is general information, not medical advice. If you are in crisis, call or text 988.",
        description="Short note shown above the footer of every email; empty to hide.",
    )
    cta_label: str = Field(N_("Book a consultation"), description="Label of the call-to-action button.")
    cta_lead: str = Field(  # the defaults are in the catalogues: emails in other languages translate them
        N_("Questions about whether this could help you? Our team is happy to talk it through."),
        description="Sentence above the call-to-action button.",
    )
    unsubscribe_email: str | None = Field(
        None, description="mailto: target in List-Unsubscribe; default unsubscribe@<from domain>."
    )
    language: str = Field("en", description="Language of emails and pages (BCP 47).")
    archive_indexable: bool = Field(
        False, description="Let search engines index the public archive (/archive and the issues published in it); "
                           "off: its pages say noindex. Every other public page is noindex always.",
    )
    # The logo's box in emails (its image is drawn at this size; give the height too so clients that
    # block images keep the space) and its alt text (default: the organisation's name).
    logo_width: int = Field(160, ge=16, le=600, description="Width of the logo in emails, in px (16-600).")
    logo_height: int | None = Field(None, ge=8, le=400, description="Height of the logo in emails, in px; "
                                                                    "unset: in proportion to its width.")
    logo_alt: str | None = Field(None, max_length=200, description="Alt text of the logo; default the organisation name.")

    # Audience
    secret_key: SecretStr | None = Field(
        None, description="Signs confirmation and preference links (at least 32 bytes). Unset: a random key kept in "
                          "<var_dir>/secret.key."
    )
    default_timezone: str = Field("America/Los_Angeles", description="IANA time zone of contacts that give none.")
    default_list: str = Field("newsletter", description="Slug of the newsletter's list (made on first use).")
    consent_text: str = Field(
        "Yes, send me the clinic's newsletter by email. I can unsubscribe at any time.",
        description="The consent wording shown verbatim on the subscribe form and stored with each sign-up.",
    )
    consent_version: str = Field("2026-11", description="Version label of the consent wording.")
    # The same consent in Spanish, for the Spanish sign-up page (a different text is a different
    # consent: it has its own version and is stored, by hash, with each sign-up made on that page).
    consent_text_es: str = Field(
        "Sí, envíenme el boletín de la clínica por correo electrónico. Puedo darme de baja en cualquier momento.",
        description="The consent wording of the Spanish sign-up page, shown verbatim and stored with each sign-up.",
    )
    consent_version_es: str = Field("2026-12-es", description="Version label of the Spanish consent wording.")
    record_ip_and_agent: bool = Field(
        False, description="Keep the IP address and user agent with consent records (off: data minimisation)."
    )
    confirm_link_hours: int = Field(72, ge=1, description="How long a confirmation link stays valid.")
    public_form_limit_per_hour: int = Field(20, ge=1, description="Public form posts allowed per client per hour.")
    # The consultation request form (/consultation): its own consent, separate from the newsletter's.
    consultation_consent_text: str = Field(
        "Yes, the clinic may contact me about a consultation by the method I chose above.",
        description="The wording of the consultation form's consent box, shown verbatim and stored (by hash) "
                    "with the lead.",
    )
    consultation_consent_version: str = Field("2026-12", description="Version label of that wording.")
    consultation_consent_text_es: str = Field(
        "Sí, la clínica puede contactarme sobre una consulta por el medio que elegí arriba.",
        description="That wording on the Spanish consultation form, shown verbatim and stored (by hash) with the lead.",
    )
    consultation_consent_version_es: str = Field("2026-12-es", description="Version label of the Spanish wording.")
    intake_email: str | None = Field(
        None, description="Who is told of each new consultation request (the lead's name and a link to the staff "
                          "app only); unset: nobody is emailed, staff see new requests on the Leads board.",
    )
    embed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins (https://clinic.example) whose pages may read "
                                          "the JSON answers of /subscribe and /consultation (CORS); empty: none.",
    )
    api_rate_per_minute: int = Field(120, ge=1, le=100_000, description="REST API calls allowed per token per minute "
                                     "(429 with Retry-After above it).")

    # Staff app
    staff_idle_minutes: int = Field(30, ge=1, le=24 * 60, description="A staff session ends after this many minutes "
                                    "without a request (it ends after 12 hours whatever happens).")
    require_2fa: bool = Field(False, description="Admins must sign in with a TOTP code as well: an admin without one "
                              "is sent to set it up before any other page (the contact list reveals health interest).")
    issue_approval: bool = Field(False, description="An issue a marketing user schedules waits for an admin's approval "
                                 "before it can send.")
    signin_max_failures: int = Field(5, ge=1, description="Failed staff sign-ins allowed per account in 15 minutes; "
                                     "then that account's sign-in waits.")
    signin_client_max_failures: int = Field(20, ge=1, description="Failed staff sign-ins allowed per client address "
                                            "in 15 minutes, whichever accounts they name.")

    # Scheduler
    feed_poll_minutes: int = Field(30, ge=1, description="How often the scheduler polls feeds.")
    scheduler_interval_seconds: int = Field(5, ge=1, description="How often the scheduler looks for due work.")

    # Limits
    max_post_bytes: int = Field(5_000_000, gt=0, description="Largest post file, page or feed accepted "
                                "(a hard cap on every read, whatever size the source claims).")
    fetch_timeout: float = Field(15.0, gt=0, description="Seconds to wait when fetching a post or feed URL.")
    fetch_allow_hosts: str = Field(
        "", description="Comma-separated host names, IP addresses or CIDR networks that post and feed URLs "
        "may reach although they are not globally reachable (loopback, private, link-local...).",
    )

    @field_validator("accent_colour")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not HEX_COLOUR.match(value):
            raise ValueError(f"NEWSLETTER_ACCENT_COLOUR must look like #2f6f6a, not {value!r}")
        return value

    @field_validator("rate_per_second")
    @classmethod
    def _rate(cls, value: float) -> float:
        # A rate near 0 paces a batch past what a wait can take (1e-10 a second: 10^13 s, and the
        # dispatcher's wait raised OverflowError): slower than one email an hour is not a rate anyone means.
        if 0 < value < MIN_RATE_PER_SECOND:
            raise ValueError(f"NEWSLETTER_RATE_PER_SECOND must be 0 (no limit) or at least {MIN_RATE_PER_SECOND:g} "
                             f"(about one email an hour), not {value:g}")
        return value

    @field_validator("fetch_allow_hosts", "webhook_allow_hosts")
    @classmethod
    def _allow_list(cls, value: str, info: ValidationInfo) -> str:
        from newsletter.posts.addresses import AllowList  # the rule's home; parsed here to fail at start

        AllowList.parse(value, variable_of(info.field_name))
        return value

    @field_validator("operator_email")
    @classmethod
    def _operator_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from subscribers.contacts import sendable_email  # the one rule for an address we can send to

        try:
            return sendable_email(value.strip())
        except ValueError as exc:
            raise ValueError(f"NEWSLETTER_OPERATOR_EMAIL: {exc}") from None

    @field_validator("intake_email")
    @classmethod
    def _intake_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from subscribers.contacts import sendable_email  # the one rule for an address we can send to

        try:
            return sendable_email(value.strip())
        except ValueError as exc:
            raise ValueError(f"NEWSLETTER_INTAKE_EMAIL: {exc}") from None

    @field_validator("embed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        origins = []
        for item in (str(i).strip().rstrip("/").lower() for i in items):
            if not item:
                continue
            if not re.fullmatch(r"https?://[a-z0-9.\-\[\]:]+", item) or item.count("/") != 2:
                raise ValueError(f"NEWSLETTER_EMBED_ORIGINS: {item!r} is not an origin such as "
                                 "https://clinic.example (scheme and host, optionally :port, no path)")
            origins.append(item)
        return origins

    @field_validator("public_base_url", "booking_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
        return value.rstrip("/") if value.count("/") <= 3 else value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Set but empty is refused too: it signs every link, and a blank line in an env file is a
        # forgotten value (silently falling back to var/secret.key would give each host its own key).
        if value is not None:
            _require_strong("NEWSLETTER_SECRET_KEY", value)
        return value

    @field_validator("bookings_webhook_secret")
    @classmethod
    def _strong_bookings_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty is unset here (the endpoint stays off, failing closed), as an env file or a compose
        # file's ${VAR} leaves a variable it does not use.
        if value is None or not value.get_secret_value().strip():
            return None
        _require_strong("NEWSLETTER_BOOKINGS_WEBHOOK_SECRET", value)
        return value

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _verification_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # empty, as an env file may leave it: unset
        from newsletter.tracking.signature import public_key

        try:
            public_key(value.get_secret_value())
        except (ValueError, TypeError):
            raise ValueError(f"SENDGRID_WEBHOOK_PUBLIC_KEY is not a verification key: {SENDGRID_KEY_HOWTO} "
                             "(the whole base64 text, nothing else)") from None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        networks = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"NEWSLETTER_TRUSTED_PROXIES: {item!r} is not an IP address or network "
                                 "(e.g. 127.0.0.1 or 10.0.0.0/8)") from None
        return networks

    @model_validator(mode="after")
    def _defaults(self) -> "Settings":
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.var_dir / 'newsletter.db'}"
        if self.outbox_dir is None:
            self.outbox_dir = self.var_dir / "outbox"
        if self.tracking_log_dir is None:
            self.tracking_log_dir = self.var_dir / "tracking"
        if self.tracking not in ("full", "anonymous", "off"):
            raise ValueError(f"NEWSLETTER_TRACKING must be full, anonymous or off, not {self.tracking!r}")
        if self.transport is None:
            self.transport = "sendgrid" if self.sendgrid_api_key else "outbox"
        if self.transport not in ("sendgrid", "smtp", "ses", "outbox", "memory"):
            raise ValueError(f"NEWSLETTER_TRANSPORT must be sendgrid, smtp, ses, outbox or memory, not {self.transport!r}")
        if self.transport == "smtp":
            self._check_smtp()
        if self.transport == "ses":
            self._check_ses()
        from newsletter.health_policy import setting_problem  # its rules per transport; it needs these settings

        if problem := setting_problem(self.transport, self.health_information_policy):
            raise ValueError(problem)
        if self.transport == "sendgrid" and not self.sendgrid_api_key:
            raise ValueError("NEWSLETTER_TRANSPORT=sendgrid needs SENDGRID_API_KEY in the environment")
        if self.transport == "sendgrid" and self.sendgrid_webhook_public_key is None and not self.allow_unsigned_webhooks:
            # Unsigned events could forge bounces, complaints and unsubscribes of real subscribers.
            raise ValueError(f"sending through SendGrid needs SENDGRID_WEBHOOK_PUBLIC_KEY: {SENDGRID_KEY_HOWTO} "
                             f"(or set {UNSIGNED_FOR_DEVELOPMENT})")
        if self.unsubscribe_email is None:
            self.unsubscribe_email = f"unsubscribe@{self.from_domain}"
        return self

    def _check_smtp(self) -> None:
        """The SMTP transport's settings, checked at start (each error names its variable)."""
        if not self.smtp_host or not self.smtp_host.strip():
            raise ValueError("NEWSLETTER_TRANSPORT=smtp needs NEWSLETTER_SMTP_HOST (the mail server's host name)")
        self.smtp_host = self.smtp_host.strip()
        if re.search(r"[\s/@]", self.smtp_host):
            raise ValueError("NEWSLETTER_SMTP_HOST must be a bare host name or IP address (no scheme, port or path)")
        if self.smtp_security == "none" and not is_loopback_host(self.smtp_host):
            raise ValueError("NEWSLETTER_SMTP_SECURITY=none is refused for a host that is not loopback: health "
                             "information must not cross a network in clear text; use starttls or tls")
        if self.smtp_port is None:
            self.smtp_port = {"starttls": 587, "tls": 465, "none": 25}[self.smtp_security]
        if (self.smtp_username is None) != (self.smtp_password is None):
            missing = "NEWSLETTER_SMTP_PASSWORD" if self.smtp_password is None else "NEWSLETTER_SMTP_USERNAME"
            raise ValueError(f"SMTP AUTH needs both NEWSLETTER_SMTP_USERNAME and NEWSLETTER_SMTP_PASSWORD; "
                             f"{missing} is not set")
        if self.smtp_password is not None and not self.smtp_password.get_secret_value():
            raise ValueError("NEWSLETTER_SMTP_PASSWORD is empty")
        if self.smtp_ca_file is not None and not self.smtp_ca_file.is_file():
            raise ValueError(f"NEWSLETTER_SMTP_CA_FILE: no such file: {self.smtp_ca_file}")

    def _check_ses(self) -> None:
        """The SES transport's settings, each named when missing: its SNS notifications are what
        suppress a bounced or complaining address, so it does not send without the topic."""
        missing = [name for name, value in (("NEWSLETTER_SES_REGION", self.ses_region),
                                            ("NEWSLETTER_SES_CONFIGURATION_SET", self.ses_configuration_set),
                                            ("NEWSLETTER_SES_SNS_TOPIC_ARN", self.ses_sns_topic_arn)) if not value]
        if missing:
            raise ValueError(f"NEWSLETTER_TRANSPORT=ses needs {', '.join(missing)} (the SNS topic receives the "
                             "configuration set's bounce and complaint events, which suppress addresses)")
        blank = [name for name, value in (("AWS_ACCESS_KEY_ID", self.aws_access_key_id),
                                          ("AWS_SECRET_ACCESS_KEY", self.aws_secret_access_key))
                 if value is None or not value.get_secret_value().strip()]
        if blank:
            raise ValueError(f"NEWSLETTER_TRANSPORT=ses needs {' and '.join(blank)} in the environment (an IAM user "
                             "allowed ses:SendEmail)")
        if not SES_REGION.match(self.ses_region or ""):
            raise ValueError("NEWSLETTER_SES_REGION must be a region name such as us-east-1")
        if not SES_CONFIGURATION_SET.match(self.ses_configuration_set or ""):
            raise ValueError("NEWSLETTER_SES_CONFIGURATION_SET must be a configuration set name (letters, digits, "
                             "_ and -, at most 64)")
        if not SNS_TOPIC_ARN.match(self.ses_sns_topic_arn or ""):
            raise ValueError("NEWSLETTER_SES_SNS_TOPIC_ARN must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        if self.ses_endpoint_url is not None and not re.match(r"^https?://[^/\s]+", self.ses_endpoint_url):
            raise ValueError("NEWSLETTER_SES_ENDPOINT_URL must be an absolute http(s) URL")

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        # The figures reveal business volume: a token short enough to guess protects nothing.
        if value is None:
            return None
        _require_strong("NEWSLETTER_METRICS_TOKEN", value)
        token = value.get_secret_value()
        if not PRINTABLE_ASCII.match(token):
            raise ValueError("NEWSLETTER_METRICS_TOKEN must be printable ASCII without spaces (it travels in a header)")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"NEWSLETTER_DEFAULT_TIMEZONE must be an IANA time zone such as Europe/London, not {value!r}") from None
        return value

    def signing_key(self) -> str:
        """The secret that signs links: from the environment, else a random key kept under var_dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _key_file((self.var_dir / "secret.key").resolve())

    @property
    def from_domain(self) -> str:
        return self.from_email.rpartition("@")[2]


def is_loopback_host(host: str) -> bool:
    """localhost or a loopback address; a name is never resolved (it could resolve anywhere)."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@lru_cache(maxsize=1)
def environment_settings() -> Settings:
    """The settings the environment (and ``.env``) gives; a bad value is a ``SettingsError`` of one line."""
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(describe(error)) from None


_in_use: Settings | None = None


def get_settings() -> Settings:
    """The settings every process starts from: the environment's, or, once the process start has
    applied the values staff saved (``use_settings``; the CLI does at every command), those."""
    return _in_use or environment_settings()


def use_settings(settings: Settings | None) -> None:
    """What ``get_settings`` returns from now on in this process (None: the environment's again)."""
    global _in_use
    _in_use = settings


def _forget() -> None:
    environment_settings.cache_clear()
    use_settings(None)


get_settings.cache_clear = _forget  # type: ignore[attr-defined]  # tests start each run afresh


def describe(error: ValidationError) -> str:
    """pydantic's report as one line, each problem under the variable to fix (pydantic's own messages
    never quote the value; ours quote only values that are not secret)."""
    parts = []
    for problem in error.errors(include_url=False, include_input=False):
        message = problem["msg"].removeprefix("Value error, ")
        variable = variable_of(problem["loc"][0]) if problem["loc"] else None
        parts.append(message if variable is None or variable in message else f"{variable}: {message}")
    return "; ".join(parts)


def variable_of(name: object) -> str:
    """The environment variable that sets field ``name`` (NEWSLETTER_ORG_NAME, SENDGRID_API_KEY)."""
    field = Settings.model_fields.get(str(name))
    if field is None:
        return str(name).upper()  # already an alias such as SENDGRID_API_KEY
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"NEWSLETTER_{str(name).upper()}"


def _require_strong(variable: str, value: SecretStr) -> None:
    size = len(value.get_secret_value().strip().encode("utf-8"))
    if size < MIN_SECRET_BYTES:
        state = "is empty" if size == 0 else f"is shorter than {MIN_SECRET_BYTES} bytes"
        raise ValueError(f"{variable} {state}: {MAKE_A_SECRET}")


def _key_file(path: Path) -> str:
    """Read (making it on first use) the embedded default's signing key; cached per path."""
    if path not in _KEYS:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".{path.name}.{os.getpid()}")
            draft.write_text(secrets.token_urlsafe(48))
            draft.chmod(0o600)
            try:
                os.link(draft, path)  # atomic; if another process won, its key stands
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        _KEYS[path] = path.read_text().strip()
    return _KEYS[path]


_KEYS: dict[Path, str] = {}
