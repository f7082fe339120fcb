def text_stats(text):
    """Words are whitespace-separated runs; sentences end in . ! or ? after a word.

    Sentences are counted in one pass over the text (a run of terminators closes at most one
    sentence, and only if a word character came since the last one), so long text without a
    terminator costs linear time, not the quadratic backtracking of a regex search.
    """
    sentences, open_sentence = 0, False
    for ch in text:
        if ch in ".!?":
            sentences += open_sentence
            open_sentence = False
        elif ch.isalnum() or ch == "_":
            open_sentence = True
    return {
        "characters": len(text),
        "words": len(text.split()),
        "lines": len(text.splitlines()),
        "sentences": sentences,
    }
