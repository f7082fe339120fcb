"""The variables a tool's processes get besides the fixed ones: exactly those the host granted.

The host names them in ``TOOLSMITH_PASS_ENV`` (declared ``env:<NAME>`` capabilities that are set,
and the egress proxy settings); everything else in this container's environment stays with us.
"""

from __future__ import annotations

import os


def passed_env() -> dict[str, str]:
    names = os.environ.get("TOOLSMITH_PASS_ENV", "").split(",")
    return {name: os.environ[name] for name in names if name and name in os.environ}
