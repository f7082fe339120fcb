import re


def text_stats(text):
    """Words are whitespace-separated runs; sentences end in . ! or ? after a word."""
    return {
        "characters": len(text),
        "words": len(text.split()),
        "lines": len(text.splitlines()),
        "sentences": len(re.findall(r"\w[^.!?]*[.!?]+", text)),
    }
