"""Contacts, consent history, double opt-in states, unsubscribe and suppression."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from newsletter.config import Settings
from newsletter import optin
from newsletter.database import Database
from newsletter.sending.dispatch import Dispatcher
from newsletter.transports.memory import MemoryTransport
from subscribers.consent import Proof, confirm, history, request_subscription, unsubscribe, set_frequency
from subscribers.contacts import check_timezone, list_contacts, normalise_email, upsert_contact
from subscribers.errors import InputError
from subscribers.lists import ensure_list
from subscribers.models import Contact, Subscription, Suppression
from subscribers.suppression import is_suppressed, lift, not_suppressed, suppress
from subscribers.tokens import LinkExpired, Tokens

FORM = Proof("form", form_id="footer", form_version="3", text="Yes, send me the newsletter.", text_version="v1")


@pytest.mark.parametrize(
    "raw, expected",
    [("  Jane.Doe@Example.COM ", "Jane.Doe@example.com"), ("a@b.example", "a@b.example"), ("x@BÜCHER.example", "x@bücher.example")],
)
def test_addresses_are_normalised(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@", "@b.com", "a b@c.com", "a@b..com"])
def test_bad_addresses_are_refused_with_the_reason(raw: str) -> None:
    with pytest.raises(InputError):
        normalise_email(raw)


def test_one_contact_per_address_and_values_merge(db: Database, settings: Settings) -> None:
    with db.session() as s:
        first = upsert_contact(s, "Ann@Example.com", default_timezone="UTC", source="form", name="Ann", tags=["Blog"])
        again = upsert_contact(s, " Ann@example.COM", default_timezone="UTC", source="import",
                               timezone="Europe/Paris", custom_fields={"clinic": "LA"}, tags=["blog", "vip"])
        assert first.created and not again.created and again.changed
        assert first.contact.id == again.contact.id
        assert again.contact.timezone == "Europe/Paris" and again.contact.tag_names == ["blog", "vip"]
        same = upsert_contact(s, "ann@example.com", default_timezone="UTC", source="import", name="Ann")
        assert not same.changed
        with pytest.raises(InputError, match="IANA"):
            upsert_contact(s, "b@example.com", default_timezone="UTC", source="form", timezone="Mars/Base")


def test_double_opt_in_round_trip_records_every_step(db: Database) -> None:
    with db.session() as s:
        contact = upsert_contact(s, "c@example.com", default_timezone="UTC", source="form").contact
        newsletter = ensure_list(s, "newsletter")
        outcome = request_subscription(s, contact, newsletter, FORM)
        assert outcome.state == "pending" and outcome.needs_confirmation_email
        assert confirm(s, outcome.subscription, Proof("email_link")) == "confirmed"
        assert confirm(s, outcome.subscription, Proof("email_link")) == "already"  # idempotent
        events = [(e.action, e.method) for e in history(s, contact)]
        assert events == [("requested", "form"), ("confirmed", "email_link")]
        first = history(s, contact)[0]
        assert first.form_id == "footer" and first.consent_text_hash and first.ip_address is None


def test_unsubscribe_per_list_and_globally(db: Database) -> None:
    with db.session() as s:
        contact = upsert_contact(s, "d@example.com", default_timezone="UTC", source="admin").contact
        news, events = ensure_list(s, "newsletter"), ensure_list(s, "events")
        for lst in (news, events):
            request_subscription(s, contact, lst, Proof("admin"), confirmed=True)
        assert unsubscribe(s, contact, news, Proof("email_link"))
        assert not unsubscribe(s, contact, news, Proof("email_link"))  # a repeat changes nothing
        assert {sub.mailing_list.slug: sub.status for sub in contact.subscriptions} == {
            "newsletter": "unsubscribed", "events": "confirmed"}
        assert not is_suppressed(s, contact.email)
        unsubscribe(s, contact, None, Proof("one_click"))
        assert contact.status == "unsubscribed" and is_suppressed(s, contact.email)
        assert all(sub.status == "unsubscribed" for sub in contact.subscriptions)


def test_withdrawal_beats_reimport_and_suppression_beats_everything(db: Database) -> None:
    with db.session() as s:
        news = ensure_list(s, "newsletter")
        left = upsert_contact(s, "left@example.com", default_timezone="UTC", source="import").contact
        request_subscription(s, left, news, Proof("import"), confirmed=True)
        unsubscribe(s, left, news, Proof("email_link"))
        assert request_subscription(s, left, news, Proof("import", note="old CRM"), confirmed=True).state == "withdrawn"
        # The person themselves may come back through the form (a new, explicit request).
        assert request_subscription(s, left, news, FORM).state == "pending"

        bounced = upsert_contact(s, "bounced@example.com", default_timezone="UTC", source="import").contact
        suppress(s, bounced.email, "hard_bounce")
        assert request_subscription(s, bounced, news, FORM).state == "suppressed"
        assert request_subscription(s, bounced, news, Proof("admin"), confirmed=True).state == "suppressed"
        mailable = s.scalars(select(Contact.email).where(not_suppressed()).order_by(Contact.email)).all()
        assert mailable == ["left@example.com"]


def test_erased_suppression_keeps_no_address_and_cannot_be_lifted(db: Database) -> None:
    with db.session() as s:
        suppress(s, "gone@example.com", "manual")
        suppress(s, "gone@example.com", "erased", keep_address=False)
        row = s.scalar(select(Suppression))
        assert row.email is None and row.reason == "erased" and is_suppressed(s, "gone@example.com")
        with pytest.raises(ValueError, match="erased"):
            lift(s, "gone@example.com")
        suppress(s, "manual@example.com", "manual")
        assert lift(s, "manual@example.com") and not is_suppressed(s, "manual@example.com")


def test_frequency_is_a_recorded_preference(db: Database) -> None:
    with db.session() as s:
        contact = upsert_contact(s, "f@example.com", default_timezone="UTC", source="form").contact
        sub = request_subscription(s, contact, ensure_list(s, "newsletter"), FORM, confirmed=True).subscription
        assert set_frequency(s, sub, "monthly", Proof("email_link")) and not set_frequency(s, sub, "monthly", Proof("email_link"))
        with pytest.raises(InputError):
            set_frequency(s, sub, "hourly", Proof("email_link"))
        assert [e.action for e in history(s, contact)][-1] == "frequency"


def test_tokens_are_signed_per_purpose_and_expire() -> None:
    tokens = Tokens("a" * 32)
    token = tokens.make("confirm", s=7)
    assert tokens.read("confirm", token, max_age_seconds=60) == {"s": 7}
    with pytest.raises(InputError, match="not valid"):
        tokens.read("preferences", token)  # another purpose
    with pytest.raises(InputError, match="not valid"):
        tokens.read("confirm", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(InputError, match="not valid"):
        Tokens("b" * 32).read("confirm", token)
    with pytest.raises(LinkExpired):
        tokens.read("confirm", token, max_age_seconds=-1)
    assert "@" not in token


class _CheckingTransport(MemoryTransport):
    """Notes, as the confirmation goes out, whether another thread can already read the sign-up."""

    def __init__(self, settings: Settings, db: Database) -> None:
        super().__init__(settings)
        self.db, self.seen_by_others = db, []

    def send(self, batch):  # noqa: ANN001, ANN201
        def look() -> None:
            with self.db.session() as s:
                self.seen_by_others.append(s.scalar(select(Subscription.status)))

        other = threading.Thread(target=look)
        other.start()
        other.join(timeout=10)
        return super().send(batch)


def test_the_confirmation_goes_after_the_sign_up_is_stored_and_never_for_a_rolled_back_one(
        db: Database, settings: Settings) -> None:
    transport = _CheckingTransport(settings, db)
    with pytest.raises(RuntimeError), db.session() as s:
        assert optin.sign_up(s, settings, "ana@example.org", name="Ana", proof=Proof("form")).email_queued
        raise RuntimeError("the request failed after the sign-up")
    assert Dispatcher(settings, db, transport).run_until_idle().one_offs == 0
    assert transport.sent == []  # rolled back: nothing stored, nothing queued, nothing sent
    with db.session() as s:
        optin.sign_up(s, settings, "ana@example.org", name="Ana", proof=Proof("form"))
    assert transport.sent == []  # queued with the sign-up; a dispatcher sends it
    assert Dispatcher(settings, db, transport).run_until_idle().one_offs == 1
    # While the email was sent the database was free, and the pending subscription already stored.
    assert transport.seen_by_others == ["pending"]
    assert [m["To"].addresses[0].addr_spec for m in transport.sent] == ["ana@example.org"]


def test_list_contacts_newest_first_by_list_and_subscription_status(db: Database) -> None:
    with db.session() as s:
        newsletter, other = ensure_list(s, "newsletter"), ensure_list(s, "other")
        for email, mailing_list, confirmed in (("a@example.org", newsletter, True), ("b@example.org", None, False),
                                               ("c@example.org", newsletter, False), ("d@example.org", other, True)):
            contact = upsert_contact(s, email, default_timezone="UTC", source="admin").contact
            if mailing_list is not None:
                request_subscription(s, contact, mailing_list, Proof("admin"), confirmed=confirmed)
        s.flush()

        def emails(contacts: list[Contact]) -> list[str]:
            return [c.email for c in contacts]

        assert emails(list_contacts(s)) == ["d@example.org", "c@example.org", "b@example.org", "a@example.org"]
        assert emails(list_contacts(s, limit=2, offset=1)) == ["c@example.org", "b@example.org"]
        assert emails(list_contacts(s, list_id=newsletter.id)) == ["c@example.org", "a@example.org"]
        assert emails(list_contacts(s, list_id=newsletter.id, status="confirmed")) == ["a@example.org"]
        assert emails(list_contacts(s, list_id=newsletter.id, status="pending")) == ["c@example.org"]
        assert len(list_contacts(s, status="confirmed")) == 4  # a status means nothing without a list


@pytest.mark.parametrize("name", ["0" * 300, "America/" + "x" * 300, "Europe/Nowhere", "../../etc/passwd", ""])
def test_a_time_zone_that_is_not_one_is_refused_by_name(name: str) -> None:
    """Found by the CSV fuzz test: a name longer than the file system allows raised OSError (a
    traceback) instead of the one-line error."""
    with pytest.raises(InputError, match="is not an IANA time zone"):
        check_timezone(name)
    assert check_timezone("America/New_York") == "America/New_York"
