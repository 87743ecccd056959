"""Send windows: days of the week and hours, in the contact's own time zone.

A step due outside the window waits for the window to open. All arithmetic is on wall-clock times
in the contact's zone, converted back to UTC by zoneinfo, so daylight-saving changes are handled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time | None  # None: until midnight

    @classmethod
    def from_definition(cls, data: dict) -> "Window":
        return cls(
            days=frozenset(DAYS.index(d) for d in data["days"]),
            start=time.fromisoformat(data["start"]),
            end=None if data["end"] in ("24:00", "00:00") else time.fromisoformat(data["end"]),
        )

    def contains(self, local: datetime) -> bool:
        if local.weekday() not in self.days:
            return False
        clock = local.time().replace(tzinfo=None)
        return clock >= self.start and (self.end is None or clock < self.end)

    def next_open(self, moment: datetime, zone: str) -> datetime:
        """The first instant at or after ``moment`` (aware) that falls inside the window, in UTC."""
        tz = ZoneInfo(zone)
        local = moment.astimezone(tz)
        if self.contains(local):
            return moment.astimezone(timezone.utc)
        for offset in range(0, 8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, tzinfo=tz)
            # zoneinfo reads a wall time in a spring-forward gap as the time before the change;
            # round trip through UTC to land on a real instant.
            opening = opening.astimezone(timezone.utc).astimezone(tz)
            if opening >= local:
                return opening.astimezone(timezone.utc)
        raise ValueError("a send window needs at least one day")  # validation prevents this
