"""A slot: weekdays and a wall-clock time ("tue 09:00") at which an automation's issues go out, in
each contact's own time zone (the local-time sends of ``newsletter.sending.schedule``).

A slot date counts as still ahead while the first zone on Earth has not reached its time
(``first_local_instant``): an issue scheduled for it reaches everyone on time. A monthly slot is the
first of its weekdays in each month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from newsletter.errors import InputError
from newsletter.sending.enqueue import first_local_instant

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEK, MONTH = "week", "month"


@dataclass(frozen=True)
class Slot:
    days: tuple[int, ...]  # 0 = Monday
    at: time

    @property
    def days_text(self) -> str:
        return ",".join(DAY_NAMES[d] for d in self.days)

    @property
    def time_text(self) -> str:
        return f"{self.at:%H:%M}"

    def __str__(self) -> str:
        return f"{self.days_text} {self.time_text}"


FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(word: str) -> int:
    word = word.strip().lower()
    for number, (short, full) in enumerate(zip(DAY_NAMES, FULL_NAMES)):
        if word in (short, full):
            return number
    raise InputError(f"{word!r} is not a weekday; use mon, tue, wed, thu, fri, sat or sun")


def parse_slot(text: str) -> Slot:
    """'tue 09:00', 'mon,thu 8:30', 'Tuesday 09:00' -> a Slot; anything else is a one-line error."""
    parts = " ".join((text or "").split()).rsplit(" ", 1)
    if len(parts) != 2:
        raise InputError(f"slot {text!r}: give weekdays and a time, like 'tue 09:00' or 'mon,thu 08:30'")
    days_part, time_part = parts
    return Slot(parse_days(days_part), parse_time(time_part))


def parse_days(text: str) -> tuple[int, ...]:
    words = [w for w in text.replace(" ", ",").split(",") if w.strip()]
    if not words:
        raise InputError("choose at least one weekday")
    return tuple(sorted({_day(w) for w in words}))


def parse_time(text: str) -> time:
    try:
        value = time.fromisoformat(text.strip().zfill(5))
    except ValueError:
        raise InputError(f"{text!r} is not a time; use 24-hour HH:MM, like 09:00") from None
    if value.second or value.microsecond or value.tzinfo:
        raise InputError(f"{text!r}: give hours and minutes only, like 09:00")
    return value


def stored(days: str, at: str) -> Slot:
    """A slot as the automations table keeps it."""
    return Slot(parse_days(days), parse_time(at))


def _on_slot(day: date, slot: Slot, every: str) -> bool:
    return day.weekday() in slot.days and (every != MONTH or day.day <= 7)


def starts(day: date, slot: Slot) -> datetime:
    """When a slot date begins to be reached: the first zone's wall clock shows the slot's time."""
    return first_local_instant(day, slot.at)


def next_slot(slot: Slot, every: str, now: datetime) -> date:
    """The first slot date no zone has reached yet at ``now``."""
    day = now.date() - timedelta(days=2)  # the first zone is up to 14 hours ahead of UTC
    while not (_on_slot(day, slot, every) and starts(day, slot) > now):
        day += timedelta(days=1)
    return day
