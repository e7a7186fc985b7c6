"""Dates a memory refers to: ISO dates kept, common relative expressions resolved.

The extraction prompt asks the model to resolve relative dates against the timestamp of the
line where they were said. Models do not always comply, so :func:`resolve_date` is applied to
whatever they return: an ISO date or date-time is normalised to ``YYYY-MM-DD``; a relative
expression is resolved against the anchor (the source item's timestamp) with a small rule set;
anything else becomes ``None`` (an unknown date, never a wrong one).

Rules (the anchor is a date *D*; weeks start on Monday):

- ``today`` / ``tonight`` / ``this morning|afternoon|evening`` → *D*; ``yesterday`` → *D*-1;
  ``tomorrow`` → *D*+1; ``the day before yesterday`` → *D*-2; ``the day after tomorrow`` → *D*+2
- ``N days|weeks ago`` / ``in N days|weeks`` (N a digit or a number word up to twelve)
- ``N months|years ago`` / ``in N months|years`` (same day of month, clamped)
- ``last <weekday>`` → the latest such day strictly before *D*; ``next <weekday>`` → the first
  such day strictly after *D*; ``this <weekday>`` / ``on <weekday>`` / ``<weekday>`` → that
  day of *D*'s week
- ``last|this|next week`` → the Monday of that week; ``last|this|next month`` → its 1st;
  ``last|this|next year`` → its January 1st
- ``in <Month>`` / ``<Month>`` / ``last|next <Month>`` → the 1st of that month in *D*'s year
  (``last``: the latest such month before *D*'s month; ``next``: the first after it)
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta

from ..search.temporal import NUMBERS

_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_NUMBERS = NUMBERS  # one table of number words (recall reads them too)
_FIXED = {
    "today": 0,
    "tonight": 0,
    "this morning": 0,
    "this afternoon": 0,
    "this evening": 0,
    "now": 0,
    "yesterday": -1,
    "last night": -1,
    "tomorrow": 1,
    "the day before yesterday": -2,
    "the day after tomorrow": 2,
}
_AGO = re.compile(r"(?P<n>\d+|[a-z]+) (?P<unit>day|week|month|year)s? ago")
_IN = re.compile(r"in (?P<n>\d+|[a-z]+) (?P<unit>day|week|month|year)s?")
_REL = re.compile(r"(?:(?P<which>last|this|next|on) )?(?P<name>[a-z]+)")


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _shift(anchor: date, n: int, unit: str) -> date:
    if unit == "day":
        return anchor + timedelta(days=n)
    if unit == "week":
        return anchor + timedelta(weeks=n)
    return _add_months(anchor, n if unit == "month" else 12 * n)


def _count(text: str) -> int | None:
    return int(text) if text.isdigit() else _NUMBERS.get(text)


def parse_iso_date(value: str) -> date | None:
    """The date of an ISO 8601 date or date-time string (``2026-05-03``,
    ``2026-05-03T10:00:00Z``), or ``None``. A date-time with an offset is taken in UTC."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?", text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()
    return None


def resolve_relative(text: str, anchor: date) -> date | None:
    """The date a relative expression such as ``"last Tuesday"`` means when said on
    ``anchor`` (see the module's rules), or ``None`` when it is not one of them."""
    phrase = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    if phrase in _FIXED:
        return anchor + timedelta(days=_FIXED[phrase])
    for pattern, sign in ((_AGO, -1), (_IN, 1)):
        match = pattern.fullmatch(phrase)
        if match:
            n = _count(match["n"])
            return None if n is None else _shift(anchor, sign * n, match["unit"])
    if phrase.startswith("in "):
        phrase = phrase[3:]
    match = _REL.fullmatch(phrase)
    if not match:
        return None
    which, name = match["which"], match["name"]
    if name in _WEEKDAYS:
        delta = _WEEKDAYS[name] - anchor.weekday()
        if which == "last":
            return anchor - timedelta(days=(anchor.weekday() - _WEEKDAYS[name]) % 7 or 7)
        if which == "next":
            return anchor + timedelta(days=delta % 7 or 7)
        return anchor + timedelta(days=delta)
    step = {"last": -1, "this": 0, "next": 1}.get(which or "")
    if name == "week" and step is not None:
        return anchor - timedelta(days=anchor.weekday()) + timedelta(weeks=step)
    if name == "month" and step is not None:
        return _add_months(anchor.replace(day=1), step)
    if name == "year" and step is not None:
        return date(anchor.year + step, 1, 1)
    if name in _MONTHS and which != "on":
        month = _MONTHS[name]
        year = anchor.year
        if which == "last" and month >= anchor.month:
            year -= 1
        elif which == "next" and month <= anchor.month:
            year += 1
        return date(year, month, 1)
    return None


def resolve_date(value: object, anchor: datetime | date) -> str | None:
    """``value`` (what a model gave as ``occurred_at``) as an ISO date string: ISO dates and
    date-times are normalised, relative expressions resolved against ``anchor``, anything
    else (including non-strings) is ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    parsed = parse_iso_date(value)
    if parsed is None:
        if isinstance(anchor, datetime):
            aware = anchor if anchor.tzinfo else anchor.replace(tzinfo=UTC)
            day = aware.astimezone(UTC).date()
        else:
            day = anchor
        parsed = resolve_relative(value, day)
    return parsed.isoformat() if parsed else None


__all__ = ["parse_iso_date", "resolve_date", "resolve_relative"]
