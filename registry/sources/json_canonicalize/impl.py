import json


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def json_canonicalize(document):
    """Parse strictly (no NaN or Infinity), then dump with sorted keys and compact separators."""
    try:
        value = json.loads(document, parse_constant=reject_constant)
    except RecursionError:
        raise ValueError("document nests too deeply") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
