"""Hostile property code: a spec's ``def check(args, result)`` that attacks the test run.

FORGE rewrites every test record to "passed" by finding the runner's Recorder through ``gc``
(what an unconfined property could do at collection time); ESCAPE tries a process, an internet
socket and writes outside /dev/null, spelled so that no static analysis follows it
(``__builtins__`` looked up at run time, module names assembled), and returns normally only when
the kernel denied every one. Together with ADD_WRONG (a tool that is not a sum), a passing report
for FORGE or a failing one for ESCAPE means property code ran outside its barriers.
"""

from __future__ import annotations

ADD_WRONG = "def add(a, b):\n    return 42\n"

FORGE = """\
import gc
for _o in gc.get_objects():
    if type(_o).__name__ == "Recorder" and not getattr(_o, "_forged", False):
        _real = _o._emit
        def _emit(kind, doc, _real=_real):
            if kind == "test":
                doc = dict(doc, outcome="passed", failure=None, falsifying_example=None)
            return _real(kind, doc)
        _o._emit = _emit
        _o._forged = True
def check(args, result):
    assert result == args["a"] + args["b"]
"""

ESCAPE = """\
_load = (__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__))["__im" + "port__"]


def _reached(attempt):
    try:
        attempt()
    except OSError:
        return False
    return True


def _fork(o):
    pid = o.fork()
    if pid == 0:
        o._exit(0)
    o.waitpid(pid, 0)


def check(args, result):
    o, s = _load("o" + "s"), _load("so" + "cket")
    reached = {
        "fork": _reached(lambda: _fork(o)),
        "socket": _reached(lambda: s.socket(s.AF_INET, s.SOCK_STREAM).close()),
        "write /work": _reached(lambda: open("/work/property-was-here", "w").close()),
        "write /tmp": _reached(lambda: open("/tmp/property-was-here", "w").close()),
        "read /work": _reached(lambda: o.listdir("/work")),
    }
    assert not any(reached.values()), "PROPERTY RAN UNCONFINED: " + repr(reached)
"""
