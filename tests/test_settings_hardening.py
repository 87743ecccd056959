"""Configuration that would leave the product open is refused before anything starts: weak secrets,
SendGrid sending without the webhook's verification key, untrusted proxy lists. Every command says so
in one line and a non-zero exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings, get_settings
from tests.cli_walk import leaf_commands
from tests.liveserver import free_port
from tests.webhook_signer import Signer

KEY = Signer().public
MAKE_A_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings as a process starts from them, with ``env`` set on top of the test's own."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return get_settings()
    finally:
        get_settings.cache_clear()


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValueError) as caught:  # SettingsError, an InputError: what every command reports
        load(monkeypatch, **env)
    message = str(caught.value)
    assert "\n" not in message and message.strip()
    return message


# Secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "   ", "x" * 31, "é" * 15, "short-key"])
def test_a_secret_key_shorter_than_32_bytes_is_refused(value: str, settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, NEWSLETTER_SECRET_KEY=value)
    assert message.startswith("NEWSLETTER_SECRET_KEY ") and MAKE_A_SECRET in message
    if value.strip():
        assert value not in message  # a secret is never echoed


@pytest.mark.parametrize("value", ["x" * 32, "é" * 16])
def test_a_secret_key_of_32_bytes_is_taken(value: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, NEWSLETTER_SECRET_KEY=value).signing_key() == value


def test_unset_the_generated_key_file_stays_the_default(settings: Settings) -> None:
    key = settings.signing_key()
    assert len(key) >= 32 and (settings.var_dir / "secret.key").read_text().strip() == key


def test_the_bookings_secret_must_be_strong_and_empty_means_unset(settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("short", "y" * 31):
        message = refusal(monkeypatch, NEWSLETTER_BOOKINGS_WEBHOOK_SECRET=value)
        assert message.startswith("NEWSLETTER_BOOKINGS_WEBHOOK_SECRET ") and MAKE_A_SECRET in message
    for empty in ("", "  "):  # as an env file leaves an unused variable: the endpoint stays off
        assert load(monkeypatch, NEWSLETTER_BOOKINGS_WEBHOOK_SECRET=empty).bookings_webhook_secret is None
    strong = "z" * 40
    secret = load(monkeypatch, NEWSLETTER_BOOKINGS_WEBHOOK_SECRET=strong).bookings_webhook_secret
    assert secret is not None and secret.get_secret_value() == strong


# SendGrid without its webhook key ------------------------------------------------------------------


@pytest.mark.parametrize("env", [{"SENDGRID_API_KEY": "SG.key"},
                                 {"SENDGRID_API_KEY": "SG.key", "NEWSLETTER_TRANSPORT": "sendgrid"},
                                 {"SENDGRID_API_KEY": "SG.key", "SENDGRID_WEBHOOK_PUBLIC_KEY": ""}])
def test_sending_through_sendgrid_needs_the_webhook_key(env: dict[str, str], settings: Settings,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, **env)
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in message and "NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS" in message
    assert "Mail Settings > Event Webhook" in message and "Signed Event Webhook" in message


def test_sendgrid_starts_with_a_key_or_the_development_setting(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, SENDGRID_API_KEY="SG.key", SENDGRID_WEBHOOK_PUBLIC_KEY=KEY).transport == "sendgrid"
    monkeypatch.delenv("SENDGRID_WEBHOOK_PUBLIC_KEY")
    development = load(monkeypatch, NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS="true")
    assert development.transport == "sendgrid" and development.sendgrid_webhook_public_key is None
    # An API key with another transport sends nothing through SendGrid.
    monkeypatch.delenv("NEWSLETTER_ALLOW_UNSIGNED_WEBHOOKS")
    assert load(monkeypatch, NEWSLETTER_TRANSPORT="outbox").transport == "outbox"


def test_a_webhook_key_that_is_not_a_key_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, SENDGRID_WEBHOOK_PUBLIC_KEY="bm90IGEga2V5")
    assert message.startswith("SENDGRID_WEBHOOK_PUBLIC_KEY is not a verification key") and "bm90" not in message


# Trusted proxies -----------------------------------------------------------------------------------


def test_trusted_proxies_are_addresses_or_networks(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.trusted_proxies == []
    assert load(monkeypatch, NEWSLETTER_TRUSTED_PROXIES=" 127.0.0.1, 10.0.0.0/8,,::1 ").trusted_proxies == [
        "127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    message = refusal(monkeypatch, NEWSLETTER_TRUSTED_PROXIES="127.0.0.1,proxy.internal")
    assert message.startswith("NEWSLETTER_TRUSTED_PROXIES: 'proxy.internal' is not an IP address or network")


def test_any_bad_value_is_one_line_naming_the_variable(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, NEWSLETTER_BATCH_SIZE="lots", NEWSLETTER_RATE_PER_DAY="-1")
    assert message.startswith("NEWSLETTER_BATCH_SIZE: Input should be a valid integer")
    assert "; NEWSLETTER_RATE_PER_DAY: Input should be greater than or equal to 0" in message


# Every command -------------------------------------------------------------------------------------

BAD_SETTINGS = {
    "an empty secret key": ({"NEWSLETTER_SECRET_KEY": ""}, "NEWSLETTER_SECRET_KEY is empty"),
    "SendGrid without the webhook key": ({"SENDGRID_API_KEY": "SG.key"}, "needs SENDGRID_WEBHOOK_PUBLIC_KEY"),
}


# Options a command checks before it loads anything (one of two is needed).
EXTRA_WORDS = {("segments", "save"): ["--json", "{}"]}


@pytest.fixture
def an_argument_file(settings: Settings) -> Iterator[None]:
    # Every argument is "1": a command that wants a file finds one, a sequence definition (the one
    # command that reads its file before anything else).
    Path("1").write_text("name: N\ntrigger: {type: manual}\nsteps:\n  - {delay: 0, subject: S, body: B}\n")
    yield


@pytest.mark.parametrize("bad", BAD_SETTINGS)
def test_every_command_refuses_bad_settings_in_one_line(bad: str, an_argument_file: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    env, expected = BAD_SETTINGS[bad]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    commands = leaf_commands(typer.main.get_command(app))
    assert len(commands) > 50
    runner = CliRunner()
    for words in commands:
        words = words + EXTRA_WORDS.get(tuple(words[:2]), [])
        get_settings.cache_clear()
        result = runner.invoke(app, words, input="y\n")  # a command that asks first is answered yes
        said = result.stderr.strip()
        assert result.exit_code not in (0, None), (words, said)
        assert result.exception is None or isinstance(result.exception, SystemExit), (words, result.exception)
        assert said.count("\n") == 0 and "Traceback" not in said, (words, said)
        assert said.startswith("error: ") and expected in said, (words, said)
    assert not (Path("var") / "newsletter.db").exists()  # nothing was started or created


def newsletter_bin() -> str:
    return str(Path(sys.executable).parent / "newsletter")


@pytest.mark.parametrize("words", [["serve", "--port", "{port}"], ["worker"], ["scheduler"], ["init"]])
def test_the_console_script_prints_one_line_and_starts_nothing(words: list[str], settings: Settings,
                                                                tmp_path: Path) -> None:
    """The processes that would serve or send, run as an operator runs them."""
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_"))}
    env.update({"NEWSLETTER_VAR_DIR": str(tmp_path / "var"), "SENDGRID_API_KEY": "SG.key"})
    argv = [newsletter_bin(), *(w.format(port=free_port()) for w in words)]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: sending through SendGrid needs "
                                                                   "SENDGRID_WEBHOOK_PUBLIC_KEY"), done.stderr
    assert not (tmp_path / "var" / "newsletter.db").exists()
