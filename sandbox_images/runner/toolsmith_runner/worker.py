"""The worker: a fresh interpreter (``python3 -I``) that imports the tool and answers calls.

It is exec'd before the job arrives, so its memory never held the job; it learns only the tool's
code and its barrier plan, installs the barriers (``toolsmith_runner.barriers``) before the
module body runs, and then gets one argument dict per call. It reads requests on fd ``argv[1]``
and answers on fd ``argv[2]``, one JSON document per line; anything the tool prints goes to
stdout/stderr, which the runner drains and counts. Stdlib and libseccomp's binding only: ``-I``
keeps the runner's site-packages and PYTHON* variables out.
"""

import json
import linecache
import os
import sys
import traceback
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the read-only runner tree

from toolsmith_runner.barriers import BarrierError, Barriers, message

_TEXT_LIMIT = 4000


def _safe_str(e: BaseException) -> str:
    try:
        return str(e)[:_TEXT_LIMIT]
    except BaseException:
        return f"<unprintable {type(e).__name__}>"


def _load(tool_name: str, code: str) -> Any:
    filename = f"/tool/{tool_name}.py"
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    module = types.ModuleType(tool_name)
    module.__file__ = filename
    sys.modules[tool_name] = module
    exec(compile(code, filename, "exec"), module.__dict__)
    fn = getattr(module, tool_name, None)
    if not callable(fn):
        raise LookupError(f"the module defines no function named {tool_name!r}")
    return fn


def _encode_args(args: dict[str, Any]) -> str:
    try:
        return json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as e:
        return json.dumps({"<args no longer JSON-serialisable>": _safe_str(e)})


def _error(e: BaseException, barriers: Barriers) -> dict[str, Any]:
    """What the caller learns of ``e``; a barrier's denial is a PermissionError naming the
    capability, whatever the tool's code made of it on the way out."""
    capability = barriers.denied(e)
    if capability is None:
        return {"error_type": type(e).__name__, "error_message": _safe_str(e)}
    return {
        "error_type": "PermissionError",
        "error_message": message(capability),
        "capability": capability,
    }


def _answer(fn: Any, args: dict[str, Any], barriers: Barriers) -> str:
    try:
        value = fn(**args)
    except BaseException as e:
        head = {
            "ok": False,
            **_error(e, barriers),
            "traceback": traceback.format_exc()[-_TEXT_LIMIT:],
        }
        return json.dumps(head)[:-1] + ', "args_after": ' + _encode_args(args) + "}"
    try:
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        head = {
            "ok": False,
            "error_type": "ResultNotJSON",
            "error_message": f"result of type {type(value).__name__} is not JSON: {_safe_str(e)}",
        }
        return json.dumps(head)[:-1] + ', "args_after": ' + _encode_args(args) + "}"
    return '{"ok": true, "value": ' + encoded + ', "args_after": ' + _encode_args(args) + "}"


def main() -> None:
    requests = os.fdopen(int(sys.argv[1]), "rb")
    answers = os.fdopen(int(sys.argv[2]), "wb")
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    load = json.loads(requests.readline())
    try:
        barriers = Barriers(load.get("barriers"))
        barriers.apply()
    except BarrierError as e:
        msg = {"fatal": f"the run-time barriers could not be installed: {e}", "barrier": True}
        answers.write((json.dumps(msg) + "\n").encode())
        answers.flush()
        os._exit(3)
    try:
        fn = _load(load["tool_name"], load["code"])
    except BaseException as e:
        detail = traceback.format_exc()[-_TEXT_LIMIT:]
        error = _error(e, barriers)
        msg = {
            "fatal": f"tool module failed at import: {error['error_type']}: "
            f"{error['error_message']}"
        }
        answers.write((json.dumps({**msg, "traceback": detail}) + "\n").encode())
        answers.flush()
        os._exit(3)
    answers.write(b'{"loaded": true}\n')
    answers.flush()
    for line in requests:
        answers.write((_answer(fn, json.loads(line)["args"], barriers) + "\n").encode())
        answers.flush()


if __name__ == "__main__":
    main()
