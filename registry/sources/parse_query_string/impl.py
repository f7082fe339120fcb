import urllib.parse


def parse_query_string(query):
    """urllib's parser, keeping blank values and repeated keys in order."""
    return urllib.parse.parse_qs(query.removeprefix("?"), keep_blank_values=True)
