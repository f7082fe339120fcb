"""Static capability analysis of a tool's implementation.

The build runs ``analyze`` before the sandbox: it finds the capabilities the code actually uses
(network, subprocess, files, environment) and compares them with what the spec declares, flags
what cannot be bounded statically (dynamic code, introspection, native code), and decides whether
the tool may use the in-process restricted runtime. It is lint and a fast-path gate, not the
security boundary: the Docker sandbox is.

Capabilities are found by kind, not by case: names are followed through aliases, star imports,
``getattr`` with constant strings, ``__import__`` and importlib, re-exporting modules
(``logging.os``) and private or C twins (``_socket``, ``posix``); whatever cannot be followed
(a module handed on as a value, a format template built at run time, a ``__reduce__``, private
interpreter modules) is ``dynamic`` and never accepted.

The checks are a chain of ``Rule`` objects (an id, a reason, a check callable over an ``Analysis``)
so that the constitution can add its own without touching this package. ``analyze`` does no IO.

Inside: ``_resolver`` (what names refer to), ``_capabilities`` (the capability table),
``_rules`` (the checks), ``_restricted`` (the restricted runtime's allowlist), ``_analyze``.
"""

from toolsmith.analysis._analyze import PolicyReport, analyze
from toolsmith.analysis._capabilities import capability_of
from toolsmith.analysis._resolver import Use
from toolsmith.analysis._restricted import RESTRICTED_MODULES, RESTRICTED_NAMES, RESTRICTED_RULES
from toolsmith.analysis._rules import (
    DEFAULT_RULES,
    Analysis,
    Finding,
    Hit,
    Rule,
    Severity,
    describe_use,
    required_capabilities,
)

__all__ = [
    "DEFAULT_RULES",
    "RESTRICTED_MODULES",
    "RESTRICTED_NAMES",
    "RESTRICTED_RULES",
    "Analysis",
    "Finding",
    "Hit",
    "PolicyReport",
    "Rule",
    "Severity",
    "Use",
    "analyze",
    "capability_of",
    "describe_use",
    "required_capabilities",
]
