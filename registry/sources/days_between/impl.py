import datetime
import re

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse(text):
    if not ISO_DATE.fullmatch(text):
        raise ValueError(f"{text!r} is not an ISO date (YYYY-MM-DD)")
    return datetime.date.fromisoformat(text)


def days_between(start, end):
    """Whole days from start to end, via the proleptic Gregorian calendar."""
    return (parse(end) - parse(start)).days
