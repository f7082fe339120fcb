import datetime

from dateutil import parser

# Parts the text leaves out (the year of "5 March", the day of "March 2024") come from here, so
# the same text always gives the same date.
DEFAULT = datetime.datetime(2000, 1, 1)


def parse_date(text):
    """A date written the way people write them, as ISO 8601 (YYYY-MM-DD); month before day
    when the order is ambiguous (03/05/2024 is March 5)."""
    try:
        parsed = parser.parse(text, default=DEFAULT, ignoretz=True)  # a date has no zone
    except (ValueError, OverflowError) as e:
        raise ValueError(f"not a date: {text!r} ({e})") from None
    return parsed.date().isoformat()
