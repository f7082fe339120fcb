"""Hostile implementations, as data: each one attacks the sandbox or the verdict.

Every item's test asserts that its attack *worked*, so a passing report would mean the sandbox let
it through. ``expect`` adds what else must be true of the report (a resource verdict, the runner
surviving to report, a phrase in the failure text).
"""

from __future__ import annotations

from dataclasses import dataclass

from toolsmith.report import Verdict
from toolsmith.sandbox import Limits

ENV_CANARY_NAME = "TOOLSMITH_HOSTILE_CANARY"
ENV_CANARY = "canary-env-7f3a91"
FILE_CANARY = "canary-file-5c2e08"

FAST = Limits(timeout_s=8, call_timeout_s=3, memory_mb=128, output_bytes=64 * 1024)
WALL_CLOCK = FAST.model_copy(update={"timeout_s": 3.0, "call_timeout_s": 60.0})


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str
    test: str
    limits: Limits = FAST
    verdict: Verdict | None = None
    runner_reports: bool = True
    mention: str | None = None
    tests: int = 1


def _t(body: str) -> str:
    return "from toolsmith_harness import call, invoke, ToolRaised, ToolCrashed\n\n" + body


CORPUS: list[Hostile] = [
    Hostile(
        "network_connect",
        "import socket\n\ndef attack():\n"
        "    socket.create_connection(('1.1.1.1', 80), timeout=2).close()\n    return True\n",
        _t("def test_attack():\n    assert call() is True\n"),
        mention="OSError",
    ),
    Hostile(
        "dns",
        "import socket\n\ndef attack():\n"
        "    return socket.getaddrinfo('example.com', 443)[0][4][0]\n",
        _t("def test_attack():\n    assert isinstance(call(), str)\n"),
        mention="gaierror",
    ),
    Hostile(
        "host_env_canary",
        "import os\n\ndef attack():\n"
        f"    return os.environ.get({ENV_CANARY_NAME!r}, '') + open('/proc/1/environ').read()\n",
        _t(f"def test_attack():\n    assert {ENV_CANARY!r} in call()\n"),
    ),
    Hostile(
        "host_file_canary",
        "def attack(path):\n    return open(path).read()\n",
        _t("def test_attack():\n    assert call(path=HOST_PATH) == HOST_SECRET\n"),
        mention="FileNotFoundError",
    ),
    Hostile(
        "write_rootfs",
        "def attack():\n    open('/usr/lib/pwned', 'w').write('x')\n    return True\n",
        _t("def test_attack():\n    assert call() is True\n"),
        mention="Read-only file system",
    ),
    Hostile(
        "fill_disk",
        "def attack():\n    n = 0\n    with open('/tmp/fill', 'wb') as f:\n"
        "        while n < 2 << 30:\n            f.write(b'x' * (1 << 20))\n"
        "            n += 1 << 20\n"
        "    return n\n",
        _t("def test_attack():\n    assert call() >= 2 << 30\n"),
        mention="No space left on device",
    ),
    Hostile(
        "fork_bomb",
        "import os\n\ndef attack():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        _t("def test_attack():\n    assert call() == 'exploded'\n"),
        mention="timed out",
    ),
    Hostile(
        "memory_bomb",
        "def attack():\n    hog = []\n    while True:\n        hog.append(bytearray(8 << 20))\n",
        _t("def test_attack():\n    assert call() == 'exploded'\n"),
        verdict=Verdict.OOM,
    ),
    Hostile(
        "cpu_spin",
        "def attack():\n    while True:\n        pass\n",
        _t("def test_attack():\n    assert call() == 'done'\n"),
        limits=WALL_CLOCK,
        verdict=Verdict.TIMEOUT,
        runner_reports=False,
    ),
    Hostile(
        "sigterm_sleeper",
        "import signal, time\n\ndef attack():\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    time.sleep(3600)\n",
        _t("def test_attack():\n    assert call() == 'done'\n"),
        limits=WALL_CLOCK,
        verdict=Verdict.TIMEOUT,
        runner_reports=False,
    ),
    Hostile(
        "stdout_flood",
        "import sys\n\ndef attack():\n    for _ in range(4096):\n"
        "        sys.stdout.write('x' * 4096)\n    sys.stdout.flush()\n    return 1\n",
        _t("def test_attack():\n    assert call() == 1\n"),
        verdict=Verdict.OUTPUT_TRUNCATED,
    ),
    Hostile(
        "subprocess_root",
        "import subprocess\n\ndef attack():\n"
        "    return subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip()\n",
        _t("def test_attack():\n    assert call() == '0'\n"),
    ),
    Hostile(
        "ctypes_setuid",
        "import ctypes\n\ndef attack():\n    libc = ctypes.CDLL(None)\n"
        "    return libc.setuid(0) == 0 and libc.getuid() == 0\n",
        _t("def test_attack():\n    assert call() is True\n"),
    ),
    Hostile(
        "os_exit_at_import",
        "import os\nos._exit(0)\n\ndef attack(x):\n    return x\n",
        _t("def test_attack():\n    assert call(x=1) == 2\n"),
        mention="ToolCrashed",
    ),
    Hostile(
        "sys_exit_at_import",
        "import sys\nsys.exit(0)\n\ndef attack(x):\n    return x\n",
        _t("def test_attack():\n    assert call(x=1) == 2\n"),
        mention="SystemExit",
    ),
    Hostile(
        "pytest_skip_at_import",
        "import pytest\npytest.skip('nothing to see', allow_module_level=True)\n\n"
        "def attack(x):\n    return x\n",
        _t("def test_attack():\n    assert call(x=1) == 2\n"),
        mention="ToolCrashed",
    ),
    Hostile(
        "monkeypatch_test_stack",
        "import sys\nimport toolsmith_harness\nimport _pytest.outcomes, hypothesis\n"
        "toolsmith_harness.call = lambda **k: 2\n_pytest.outcomes.fail = lambda *a, **k: None\n\n"
        "def attack(x):\n    return x\n",
        _t("def test_attack():\n    assert call(x=1) == 2\n"),
        mention="ModuleNotFoundError",
    ),
    Hostile(
        "fake_report",
        "import os, sys\n"
        "FAKE = 'TOOLSMITH-READY\\n' + ''.join(\n"
        '    f\'TOOLSMITH {n} done {{"exit_code": 0, "collected": 1}}\\n\'\n'
        "    for n in ('', '0' * 32, 'nonce'))\n"
        "sys.stdout.write(FAKE)\nsys.stderr.write(FAKE)\n"
        "for fd in (1, 2, 3, 4, 5):\n    try:\n        os.write(fd, FAKE.encode())\n"
        "    except OSError:\n        pass\n\n"
        "def attack(x):\n    print(FAKE)\n    return x\n",
        _t("def test_attack():\n    assert call(x=1) == 2\n"),
        mention="assert 1 == 2",
    ),
    Hostile(
        "delete_tests",
        "import os, shutil\n\ndef attack():\n"
        "    found = [os.path.join(r, f) for r, _, fs in os.walk('/work') for f in fs]\n"
        "    shutil.rmtree('/work', ignore_errors=True)\n    return found\n",
        _t(
            "def test_attack():\n    assert call() != []\n\ndef test_second():\n"
            "    assert call() == ['still here']\n"
        ),
        tests=2,
    ),
    Hostile(
        "read_tests_and_frames",
        "import glob, os, sys\n\ndef attack():\n"
        "    text = ''.join(open(p).read() for p in glob.glob('/work/**/*.py', recursive=True))\n"
        "    for p in ('/proc/1/mem', '/proc/1/environ'):\n        try:\n"
        "            text += open(p, 'rb').read(1 << 16).decode('latin-1')\n"
        "        except OSError:\n            pass\n"
        "    frame = sys._getframe()\n    while frame.f_back:\n        frame = frame.f_back\n"
        "        text += repr(frame.f_locals)\n    return text\n",
        _t(
            "SECRET = 'expected-value-0xC0FFEE'\n\ndef test_attack():\n"
            "    assert SECRET in call()\n"
        ),
    ),
    Hostile(
        "kill_parent",
        "import os, signal\n\ndef attack():\n"
        "    for pid in (os.getppid(), 1):\n        for sig in (signal.SIGKILL, signal.SIGTERM, "
        "signal.SIGSTOP):\n            try:\n                os.kill(pid, sig)\n"
        "            except OSError:\n                pass\n    return 'runner dead'\n",
        _t("def test_attack():\n    assert call() == 'report forged'\n"),
    ),
]
