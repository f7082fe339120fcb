"""The property checker: a fresh interpreter (``python3 -I``) that runs a spec's property code.

A spec's properties are code too (``def check(args, result)``), written by the designer model or
whoever submits the spec, so they run confined like the tool and never in the runner's process,
which holds the job's nonce and the recorder. The runner execs this before the job exists, then
sends the properties and a barrier plan granting nothing (``toolsmith.sandbox.barriers
.property_plan``); the barriers go in before any property's module body runs. Each request then
carries one call's arguments and result and is answered with the first failing property, if any.
A property's ``tool(**kwargs)`` asks the runner to call the tool (the checker never reaches the
worker) and gets its answer back. Requests on fd ``argv[1]``, answers on fd ``argv[2]``, one JSON
document per line; stdout and stderr are /dev/null. Stdlib and libseccomp's binding only.
"""

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the read-only runner tree

from toolsmith_runner.barriers import BarrierError, Barriers

TEXT_LIMIT = 4000


class ToolRaised(Exception):
    """The tool raised an exception; ``type_name`` and ``message`` describe it."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class ToolCrashed(Exception):
    """The tool's worker died, exceeded the per-call timeout, or broke the protocol."""


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)[:TEXT_LIMIT]
    except BaseException:
        return f"<unprintable {type(e).__name__}>"


class Channel:
    def __init__(self, requests: Any, answers: Any) -> None:
        self.requests = requests
        self.answers = answers

    def send(self, doc: dict[str, Any]) -> None:
        self.answers.write((json.dumps(doc) + "\n").encode())
        self.answers.flush()

    def receive(self) -> dict[str, Any]:
        line = self.requests.readline()
        if not line:
            os._exit(0)
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise ValueError("request is not an object")
        return doc

    def tool(self, **kwargs: Any) -> Any:
        """The handle a three-parameter property receives: the runner calls the tool."""
        self.send({"call": kwargs})
        answer = self.receive()
        if answer.get("crashed") is not None:
            raise ToolCrashed(str(answer["crashed"]))
        if answer.get("ok") is True:
            return answer.get("value")
        raise ToolRaised(str(answer.get("error_type")), str(answer.get("error_message")))


def load(properties: Any) -> dict[str, Any]:
    """name -> check function, each property's source run in a namespace of its own."""
    checks = {}
    for prop in properties:
        name = str(prop["name"])
        namespace: dict[str, Any] = {
            "__name__": f"property_{name}",
            "ToolRaised": ToolRaised,
            "ToolCrashed": ToolCrashed,
        }
        exec(compile(str(prop["source"]), f"<property {name}>", "exec"), namespace)
        check = namespace.get("check")
        if not callable(check):
            raise LookupError(f"property {name} defines no function check")
        checks[name] = check
    return checks


def verdict(checks: dict[str, Any], doc: dict[str, Any], channel: Channel) -> dict[str, Any]:
    for name, check in checks.items():
        args = json.loads(json.dumps(doc["args"]))  # each property gets its own copy
        try:
            if check.__code__.co_argcount == 3:
                check(args, doc["result"], channel.tool)
            else:
                check(args, doc["result"])
        except BaseException as e:  # SystemExit and the like fail the property too
            return {"failed": name, "error": f"{type(e).__name__}: {_safe_str(e)}"}
    return {"failed": None}


def main() -> None:
    channel = Channel(os.fdopen(int(sys.argv[1]), "rb"), os.fdopen(int(sys.argv[2]), "wb"))
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")
    first = channel.receive()
    try:
        barriers = Barriers(first.get("barriers"))
        barriers.apply()
    except BarrierError as e:
        channel.send({"fatal": f"the property checker's barriers could not be installed: {e}"})
        os._exit(3)
    try:
        checks = load(first["properties"])
    except BaseException as e:
        channel.send(
            {"fatal": f"the properties failed to load: {type(e).__name__}: {_safe_str(e)}"}
        )
        os._exit(3)
    channel.send({"loaded": True})
    while True:
        channel.send(verdict(checks, channel.receive(), channel))


if __name__ == "__main__":
    main()
