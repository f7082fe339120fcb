import re

SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def parse(version):
    match = SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    core = tuple(int(match.group(i)) for i in (1, 2, 3))
    pre = match.group(4)
    return core, pre.split(".") if pre else []


def pre_key(identifier):
    return (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)


def compare_pre(a, b):
    if not a or not b:
        return (not a) - (not b)
    for x, y in zip(a, b):
        kx, ky = pre_key(x), pre_key(y)
        if kx != ky:
            return -1 if kx < ky else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def semver_compare(a, b):
    """Precedence per semver 2.0.0 section 11; build metadata is ignored."""
    (core_a, pre_a), (core_b, pre_b) = parse(a), parse(b)
    if core_a != core_b:
        return -1 if core_a < core_b else 1
    return compare_pre(pre_a, pre_b)
