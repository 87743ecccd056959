"""Settings: the one home for configuration (environment variables prefixed ``NEWSLETTER_``, or ``.env``).

The embedded default runs with no setup at all: SQLite under ``./var``. Secrets come only from the
environment (or an uncommitted ``.env``), never from files in the repository.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Storage
    var_dir: Path = Field(Path("var"), description="Folder for the embedded database and outbox.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<var_dir>/newsletter.db."
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
    cta_label: str = Field("Book a consultation", description="Label of the call-to-action button.")
    cta_lead: str = Field(
        "Questions about whether this could help you? Our team is happy to talk it through.",
        description="Sentence above the call-to-action button.",
    )
    unsubscribe_email: str | None = Field(
        None, description="mailto: target in List-Unsubscribe; default unsubscribe@<from domain>."
    )
    language: str = Field("en", description="Language of emails and pages (BCP 47).")

    # Scheduler
    feed_poll_minutes: int = Field(30, ge=1, description="How often the scheduler polls feeds.")

    # Limits
    max_post_bytes: int = Field(5_000_000, description="Largest post file or page accepted.")
    fetch_timeout: float = Field(15.0, description="Seconds to wait when fetching a post or feed URL.")

    @field_validator("accent_colour")
    @classmethod
    def _colour(cls, value: str) -> str:
        if not HEX_COLOUR.match(value):
            raise ValueError(f"NEWSLETTER_ACCENT_COLOUR must look like #2f6f6a, not {value!r}")
        return value

    @field_validator("public_base_url", "booking_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
        return value.rstrip("/") if value.count("/") <= 3 else value

    @model_validator(mode="after")
    def _defaults(self) -> "Settings":
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.var_dir / 'newsletter.db'}"
        if self.unsubscribe_email is None:
            self.unsubscribe_email = f"unsubscribe@{self.from_domain}"
        return self

    @property
    def from_domain(self) -> str:
        return self.from_email.rpartition("@")[2]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
