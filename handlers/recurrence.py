"""When a recurring task's next occurrence falls.

`daily`, `weekly` and `monthly` shift the dates by one period; a cron
expression moves them to its next fire time after the completed task's due
date. Times are computed in UTC: tasks carry no timezone of their own, so a
`daily` task due 09:00 UTC stays due 09:00 UTC across daylight-saving changes.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from croniter import croniter

from protocol.errors import InvalidPayload

_PERIODS = {"daily": timedelta(days=1), "weekly": timedelta(weeks=1)}


def check(rule: str | None) -> None:
    """Refuse a cron expression croniter cannot schedule (the payload regex admits
    its shape only), so completing the task later cannot fail on it."""
    if rule is None or rule in _PERIODS or rule == "monthly":
        return
    if not croniter.is_valid(rule):
        raise InvalidPayload(
            f"recurrence {rule!r} is not a valid cron expression", {"field": "recurrence"}
        )


def add_month(moment: datetime) -> datetime:
    """The same day and time a month later; the 31st becomes the month's last day."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _shift(rule: str, moment: datetime) -> datetime:
    if rule == "monthly":
        return add_month(moment)
    return moment + _PERIODS[rule]


def next_dates(
    rule: str, start: datetime | None, due: datetime | None, completed_at: datetime
) -> tuple[datetime | None, datetime | None]:
    """(start_date, due_date) of the occurrence after one with `start`/`due`.

    A period shifts each date present by itself (so a month from Jan 31 is Feb 28/29
    for both). A cron expression moves the anchor (the due date, else the start
    date, else the completion time) to its next fire time, and the other date keeps
    its distance to it, so the occurrence lasts as long as the one completed.
    """
    if rule in _PERIODS or rule == "monthly":
        return (
            _shift(rule, start) if start is not None else None,
            _shift(rule, due) if due is not None else None,
        )
    anchor = due or start or completed_at
    following: datetime = croniter(rule, anchor).get_next(datetime)
    delta = following - anchor
    return (
        start + delta if start is not None else None,
        due + delta if due is not None else None,
    )
