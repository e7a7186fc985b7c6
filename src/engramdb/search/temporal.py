"""Time in the question: temporal expressions resolved against a reference time.

:func:`resolve` reads an (English) query and returns a :class:`TimeIntent`: the window of
time it names, if any ("yesterday", "last weekend", "in May", "two weeks ago", "since March",
"on 3 May 2023", "in 2022", "last summer"), the order it asks for ("when did I first …" →
oldest first; "latest", "most recent" → newest first), and the query with the window's words
taken out. Recall turns the window into a boost (or a filter) on each memory's
``occurred_at`` (else its ``created_at``); see :class:`~engramdb.search.recall.RecallSettings`.

A small rule set rather than a library, by measurement (2-core machine, loaded): ``dateparser``
finds dates inside a sentence only with ``search_dates``, which took 0.2-0.7 s to import,
1.6-2.6 s for its first call and 45-240 ms for each next one, read the verb in "I may go" as
May, missed "last weekend", and gives instants where questions name spans; these rules take
~20 ms to import and ~0.2 ms a query. They cover the expressions people ask memory with
(a table of expressions × reference times tests them); an expression relative to an event
("before the trip") names no date and gives no window. Windows are whole days in the
reference time's time zone: ``start`` inclusive, ``end`` exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from ..types import format_datetime

Order = Literal["asc", "desc"]

MONTHS = {
    name: n
    for n, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
WEEKDAYS = {
    name: n
    for n, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
"""The month each (northern, meteorological) season starts in; it lasts three months."""
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "a couple of": 2,
    "couple of": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}


@dataclass(frozen=True)
class TimeWindow:
    """A span of time: ``start`` inclusive, ``end`` exclusive (``None``: open)."""

    start: datetime | None
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)

    def intersect(self, other: TimeWindow) -> TimeWindow:
        starts = [t for t in (self.start, other.start) if t is not None]
        ends = [t for t in (self.end, other.end) if t is not None]
        return TimeWindow(max(starts) if starts else None, min(ends) if ends else None)


@dataclass(frozen=True)
class TimeIntent:
    """What a query says about time (see :func:`resolve`)."""

    window: TimeWindow | None = None
    order: Order | None = None
    expressions: tuple[str, ...] = ()
    """The words that named the window or the order, as written."""
    text: str = ""
    """The query without the words that named the window."""
    reference: datetime | None = None

    def __bool__(self) -> bool:
        return self.window is not None or self.order is not None

    def explain(self) -> dict[str, Any]:
        """The explain view: the window applied (ISO 8601), the order, the words read."""
        window = self.window
        return {
            "since": format_datetime(window.start) if window and window.start else None,
            "until": format_datetime(window.end) if window and window.end else None,
            "order": self.order,
            "expressions": list(self.expressions),
            "reference": format_datetime(self.reference) if self.reference else None,
        }


# -- calendar arithmetic -------------------------------------------------------------------


def _day(d: date, tz: Any) -> datetime:
    return datetime.combine(d, time(), tzinfo=tz)


def _days(start: date, end: date, tz: Any) -> TimeWindow:
    return TimeWindow(_day(start, tz), _day(end, tz))


def _add_months(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def _month(year: int, month: int, tz: Any, count: int = 1) -> TimeWindow:
    end_year, end_month = _add_months(year, month, count)
    return _days(date(year, month, 1), date(end_year, end_month, 1), tz)


def _year(year: int, tz: Any) -> TimeWindow:
    return _days(date(year, 1, 1), date(year + 1, 1, 1), tz)


def _season(name: str, year: int, tz: Any) -> TimeWindow:
    """``winter 2023`` is December 2023 to February 2024."""
    return _month(year, SEASONS[name], tz, 3)


def _latest_month(month: int, today: date, tz: Any) -> TimeWindow:
    """The month named without a year: this year's if it has begun, else last year's."""
    year = today.year if month <= today.month else today.year - 1
    return _month(year, month, tz)


def _latest_season(name: str, today: date, tz: Any, *, completed: bool) -> TimeWindow:
    """The latest season of that name that has begun (``completed``: that has ended)."""
    for year in (today.year, today.year - 1, today.year - 2):
        window = _season(name, year, tz)
        assert window.start is not None and window.end is not None
        if window.start.date() <= today and (not completed or window.end.date() <= today):
            return window
    return _season(name, today.year - 2, tz)


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


# -- the rules -----------------------------------------------------------------------------

_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(?P<weekday>" + "|".join(WEEKDAYS) + r")"
_SEASON = r"(?P<season>" + "|".join(SEASONS) + r")"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DAYNUM = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_NUMBER = r"(?P<n>\d+|" + "|".join(sorted(NUMBERS, key=len, reverse=True)) + r")"
_UNIT = r"(?P<unit>day|week|month|year)s?"
_PREPOSITION = r"(?:(?:in|on|during|from|at|of)\s+(?:the\s+)?)?"
_BOUND = r"(?P<bound>since|after|before|until|till|by|prior to)\s+"

Rule = tuple[
    re.Pattern[str], Callable[[re.Match[str], date, Any], TimeWindow | None], tuple[str, ...]
]
"""A pattern, what reads its match, and words one of which every match holds."""


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBERS[" ".join(text.split())]


def _ago(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    n, unit = _number(m["n"].lower()), m["unit"].lower()
    if n > 1000:
        return None
    if unit == "day":
        day = today - timedelta(days=n)
        return _days(day, day + timedelta(days=1), tz)
    if unit == "week":
        monday = _monday(today) - timedelta(weeks=n)
        return _days(monday, monday + timedelta(weeks=1), tz)
    if unit == "month":
        return _month(*_add_months(today.year, today.month, -n), tz)
    return _year(today.year - n, tz) if today.year - n > 0 else None


def _past(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    n = _number(m["n"].lower()) if m["n"] else 1
    unit = m["unit"].lower()
    if n > 1000:
        return None
    if unit == "day":
        start = today - timedelta(days=n)
    elif unit == "week":
        start = today - timedelta(weeks=n)
    elif unit == "month":
        year, month = _add_months(today.year, today.month, -n)
        start = date(year, month, min(today.day, 28))
    else:
        start = date(today.year - n, today.month, min(today.day, 28))
    return _days(start, today + timedelta(days=1), tz)


def _relative(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    which, unit = m["which"].lower(), m["unit"].lower()
    step = {"last": -1, "previous": -1, "past": -1, "this": 0, "next": 1}[which]
    if unit == "week":
        monday = _monday(today) + timedelta(weeks=step)
        return _days(monday, monday + timedelta(weeks=1), tz)
    if unit == "weekend":
        saturday = _monday(today) + timedelta(days=5) + timedelta(weeks=step)
        if which in ("last", "previous", "past") and today.weekday() >= 5:
            saturday = _monday(today) - timedelta(days=2)
        return _days(saturday, saturday + timedelta(days=2), tz)
    if unit == "month":
        return _month(*_add_months(today.year, today.month, step), tz)
    return _year(today.year + step, tz)


def _relative_season(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    if m["which"].lower() == "this":
        return _latest_season(m["season"].lower(), today, tz, completed=False)
    return _latest_season(m["season"].lower(), today, tz, completed=True)


def _weekday(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    """``last Friday``: the latest Friday before today; ``on Friday``: the latest one up to
    today."""
    back = (today.weekday() - WEEKDAYS[m["weekday"].lower()]) % 7
    if m["which"] and back == 0:
        back = 7
    day = today - timedelta(days=back)
    return _days(day, day + timedelta(days=1), tz)


def _simple(days_back: int) -> Callable[[re.Match[str], date, Any], TimeWindow]:
    def rule(m: re.Match[str], today: date, tz: Any) -> TimeWindow:
        day = today - timedelta(days=days_back)
        return _days(day, day + timedelta(days=1), tz)

    return rule


def _full_date(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    try:
        day = date(int(m["year"]), MONTHS[m["month"].lower()], int(m["day"]))
    except ValueError:
        return None
    return _days(day, day + timedelta(days=1), tz)


def _day_month(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    """``May 3`` without a year: the latest such day up to today."""
    month, number = MONTHS[m["month"].lower()], int(m["day"])
    for year in (today.year, today.year - 1):
        try:
            day = date(year, month, number)
        except ValueError:
            continue
        if day <= today:
            return _days(day, day + timedelta(days=1), tz)
    return None


def _month_year(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    return _month(int(m["year"]), MONTHS[m["month"].lower()], tz)


def _season_year(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    return _season(m["season"].lower(), int(m["year"]), tz)


def _month_only(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    return _latest_month(MONTHS[m["month"].lower()], today, tz)


def _year_only(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    year = int(m["year"])  # "Cyberpunk 2077" names no year
    return _year(year, tz) if year <= today.year + 5 else None


def _season_rule(m: re.Match[str], today: date, tz: Any) -> TimeWindow | None:
    """``in (the) summer`` without a year: the latest summer that has begun."""
    return _latest_season(m["season"].lower(), today, tz, completed=False)


_FLAGS = re.IGNORECASE | re.ASCII


def _compile(pattern: str) -> re.Pattern[str]:
    # ASCII: the words are English, and a case-insensitive Unicode pattern would also match
    # "ſummer" or "K" for "k", which no table here names (a lookup of the match failed)
    return re.compile(r"\b" + pattern + r"\b", _FLAGS)


# Words one of which every match of a rule holds (lower case; parts of words will do): a
# rule runs only on a query holding one. Most questions name no time, and running every
# rule's pattern on them cost 0.1 ms a recall.
_MONTH_WORDS = tuple(sorted({name[:3] for name in MONTHS}))
_SEASON_WORDS = ("spring", "summer", "autumn", "fall", "winter")
_YEAR_WORDS = ("19", "20")

_RULES: list[Rule] = [
    # most specific first; a span one rule consumed is not read again
    (
        _compile(_PREPOSITION + rf"{_DAYNUM}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}"),
        _full_date,
        _MONTH_WORDS,
    ),
    (_compile(_PREPOSITION + rf"{_MONTH}\s+{_DAYNUM},?\s+{_YEAR}"), _full_date, _MONTH_WORDS),
    (_compile(_PREPOSITION + rf"{_MONTH},?\s+{_YEAR}"), _month_year, _MONTH_WORDS),
    (
        _compile(_PREPOSITION + rf"{_SEASON}(?:\s+of)?,?\s+{_YEAR}"),
        _season_year,
        _SEASON_WORDS,
    ),
    (_compile(rf"{_NUMBER}\s+{_UNIT}\s+ago"), _ago, ("ago",)),
    (
        _compile(rf"(?:in|over|during|within)\s+the\s+(?:last|past)\s+(?:{_NUMBER}\s+)?{_UNIT}"),
        _past,
        ("last", "past"),
    ),
    (_compile(r"the\s+day\s+before\s+yesterday"), _simple(2), ("yesterday",)),
    (_compile(r"yesterday|last\s+night"), _simple(1), ("yesterday", "last")),
    (
        _compile(r"today|tonight|this\s+(?:morning|afternoon|evening)"),
        _simple(0),
        ("today", "tonight", "this"),
    ),
    (
        _compile(
            _PREPOSITION + r"(?P<which>last|previous|past|this|next)\s+"
            r"(?P<unit>weekend|week|month|year)"
        ),
        _relative,
        ("week", "month", "year"),
    ),
    (
        _compile(_PREPOSITION + rf"(?P<which>last|this)\s+{_SEASON}"),
        _relative_season,
        _SEASON_WORDS,
    ),
    (_compile(r"(?:on\s+)?(?P<which>last\s+)?" + _WEEKDAY), _weekday, ("day",)),
    (
        _compile(_PREPOSITION + rf"{_MONTH}\s+{_DAYNUM}(?!\s*(?:,\s*)?\d)"),
        _day_month,
        _MONTH_WORDS,
    ),
    (_compile(_PREPOSITION + rf"{_DAYNUM}\s+(?:of\s+)?{_MONTH}"), _day_month, _MONTH_WORDS),
    (
        _compile(r"(?:in|during|since|before|after|until|by|between|and)\s+" + _MONTH),
        _month_only,
        _MONTH_WORDS,
    ),
    (
        _compile(r"(?:in|during|since|before|after|until|by)\s+(?:the\s+)?" + _SEASON),
        _season_rule,
        _SEASON_WORDS,
    ),
    (_compile(_PREPOSITION + _YEAR), _year_only, _YEAR_WORDS),
]
_BOUND_RE = re.compile(r"\b" + _BOUND + r"$", _FLAGS)
_BETWEEN_RE = re.compile(r"\bbetween\s+$", _FLAGS)

_ASC = _compile(
    r"(?:for\s+the\s+)?first\s+time|first\s+ever|earliest|originally|"
    r"when\s+(?:did|was|were|has|have)\s+(?:\w+\s+){0,4}first|(?:my|his|her|their|our|your)\s+first"
)
_DESC = _compile(
    r"latest|most\s+recent(?:ly)?|last\s+time|recently|lately|newest|these\s+days|nowadays|"
    r"currently|the\s+last\s+(?=\w)"
)
_ASC_WORDS = ("first", "earliest", "originally")
_DESC_WORDS = ("latest", "recent", "last", "lately", "newest", "these", "nowadays", "currently")


_WORDS = frozenset(
    {w for _, _, needs in _RULES for w in needs} | set(_ASC_WORDS) | set(_DESC_WORDS)
)


def _holds(present: frozenset[str], words: tuple[str, ...]) -> bool:
    """Whether a query holding ``present`` (of the rules' words, in its lower-cased text)
    may match a pattern needing one of ``words``. (The patterns fold ASCII letters only, and
    lower-casing keeps every ASCII letter one: a match's words are always found.)"""
    return not present.isdisjoint(words)


_ABSOLUTE = {_full_date, _month_year, _season_year, _year_only}


SCAN_CHARS = 1_000
"""Only a query's first this many characters are read for time (a question names its time
early; the work grows with the square of the expressions found)."""


def _empty(window: TimeWindow | None) -> bool:
    return window is None or (
        window.start is not None and window.end is not None and window.start >= window.end
    )


def resolve(query: str, reference: datetime | None = None) -> TimeIntent:
    """The time window and order ``query`` asks for, relative to ``reference`` (default:
    now, UTC; a naive reference is taken as UTC).

    Several windows in one query are intersected ("in 2023 ... in May" → May 2023) unless
    joined by ``between … and …`` (their span). ``since`` / ``after`` open the window's end,
    ``before`` / ``until`` / ``by`` its start. A query naming no time gives an empty intent
    (false in a boolean context) whose ``text`` is the query unchanged."""
    query, rest = query[:SCAN_CHARS], query[SCAN_CHARS:]
    ref = reference or datetime.now(UTC)
    if ref.tzinfo is None:
        ref = ref.replace(tzinfo=UTC)
    tz, today = ref.tzinfo, ref.date()
    # a year the query names anchors its year-less expressions ("in 2023 ... in May")
    years = [int(y) for y in re.findall(r"\b((?:19|20)\d\d)\b", query)]
    years = [y for y in years if y < today.year]
    anchor = date(max(years), 12, 31) if years else today
    taken: list[tuple[int, int]] = []
    # start, end, window, bound, absolute (the expression names its year)
    found: list[tuple[int, int, TimeWindow, str | None, bool]] = []
    folded = query.lower()
    present = frozenset(w for w in _WORDS if w in folded)
    for pattern, rule, needs in _RULES:
        if not _holds(present, needs):
            continue
        absolute = rule in _ABSOLUTE
        for m in pattern.finditer(query):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            try:
                read = rule(m, today if absolute else anchor, tz)
            except (ValueError, OverflowError):  # past year 1 or 9999
                continue
            if read is None:
                continue
            start = m.start()
            bound = _BOUND_RE.search(query[: m.start()])
            kind = None
            if bound is not None:
                kind = bound["bound"].lower()
                start = bound.start()
            elif _BETWEEN_RE.search(query[: m.start()]):
                kind = "between"
            lead = re.match(r"(?P<bound>since|after|before|until|till|by)\s+", m.group(0), _FLAGS)
            if lead is not None:  # the month rule reads its own preposition
                kind = lead["bound"].lower()
            elif m.group(0).lower().startswith("between"):
                kind = "between"
            taken.append((start, m.end()))
            found.append((start, m.end(), read, kind, absolute))
    found.sort(key=lambda f: f[0])
    window: TimeWindow | None = None
    fixed: TimeWindow | None = None  # from the expressions that name their year
    spans: list[tuple[int, int]] = []
    pending_between: TimeWindow | None = None
    for start, end, w, kind, absolute in found:
        spans.append((start, end))
        if kind == "between":
            pending_between = w
            continue
        if pending_between is not None and re.fullmatch(
            r"\s*(?:and\s*)?", query[spans[-2][1] : start], _FLAGS
        ):
            w = TimeWindow(pending_between.start, w.end)
            spans[-2] = (spans[-2][0], spans[-1][1])
            spans.pop()
            pending_between = None
        if kind in ("since", "after"):
            w = TimeWindow(w.start if kind == "since" else w.end, None)
        elif kind in ("before", "until", "till", "by", "prior to"):
            w = TimeWindow(None, w.start if kind == "before" or kind == "prior to" else w.end)
        window = w if window is None else window.intersect(w)
        if absolute:
            fixed = w if fixed is None else fixed.intersect(w)
    if pending_between is not None:
        window = pending_between if window is None else window.intersect(pending_between)
    if _empty(window):
        # contradictory ("last weekend before April 10, 2023"): the dated expressions alone
        window = None if _empty(fixed) else fixed
    order: Order | None = None
    expressions = [query[s:e] for s, e in spans]
    asc = _ASC.search(query) if _holds(present, _ASC_WORDS) else None
    desc = _DESC.search(query) if _holds(present, _DESC_WORDS) else None
    if asc is not None and (desc is None or asc.start() < desc.start()):
        order = "asc"
        expressions.append(asc.group(0))
    elif desc is not None and not any(s <= desc.start() < e for s, e in spans):
        order = "desc"
        expressions.append(desc.group(0))
    text = query + rest
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " + text[end:]
    text = " ".join(text.split())
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    return TimeIntent(window, order, tuple(expressions), text or query + rest, ref)


__all__ = ["Order", "TimeIntent", "TimeWindow", "resolve"]
