def word_count(text, min_length=1):
    """The number of whitespace-separated words in ``text`` at least ``min_length`` long."""
    return sum(1 for word in text.split() if len(word) >= min_length)
