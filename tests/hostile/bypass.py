"""A tool that reaches each capability by a route the static analysis is not meant to catch.

Names built at run time, private C modules, ctypes and raw system calls, builtins fetched from a
frame: whatever the analysis learns, these tests drive the sandbox and the docker runtime
directly, so they keep proving that the kernel barrier holds on its own. ``ROUTES`` maps each
route to the capability its denial must name (``""``: a call no capability grants).

``DECLARED`` is the same kind of tool using what it declares, which must keep working.
"""

from __future__ import annotations

SECRET_NAME = "BYPASS_TEST_TOKEN"
SECRET = "token-4f1c9e"

ROUTES: dict[str, str] = {
    # subprocess
    "getattr_fork": "subprocess",
    "posix_spawn": "subprocess",
    "importlib_subprocess": "subprocess",
    "multiprocessing_fork": "subprocess",
    "ctypes_fork": "subprocess",
    "raw_clone": "subprocess",
    "exec_by_name": "subprocess",
    # network
    "private_socket": "network",
    "ctypes_socket": "network",
    "urllib": "network",
    "netlink": "network",
    # files written outside the private tmp
    "io_open_write": "fs:write:/work/io",
    "os_open_write": "fs:write:/work/os",
    "pathlib_write": "fs:write:/work/pathlib",
    "ctypes_open_write": "fs:write:/work/ctypes",
    "shm_write": "fs:write:/dev/shm/shm",
    # files read outside the interpreter's trees
    "open_code_read": "fs:read:/var/lib/dpkg/status",
    "frame_builtins_read": "fs:read:/var/lib/dpkg/status",
    "listdir_root": "fs:read:/",
    # environment
    "environ_by_name": "env:TOOLSMITH_PASS_ENV",
    # never granted
    "ptrace": "",
    "unshare": "",
    "mount": "",
    "keyctl": "",
    "io_uring": "",
}

TOOL = r'''
import ctypes
import importlib
import os
import platform
import sys

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.getenv.restype = ctypes.c_char_p
NUMBERS = {
    "x86_64": {"clone": 56, "keyctl": 250, "io_uring_setup": 425},
    "aarch64": {"clone": 220, "keyctl": 219, "io_uring_setup": 425},
}[platform.machine()]


def checked(result, what, path=None):
    """A libc call's -1 as the OSError Python would raise."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), *([path] if path else []))
    return result


def bypass(route):
    if route == "getattr_fork":
        pid = getattr(__import__("o" + "s"), "fo" + "rk")()
        if pid == 0:
            os._exit(0)
        return pid
    if route == "posix_spawn":
        return os.posix_spawn("/bin/true", ["true"], {})
    if route == "importlib_subprocess":
        return importlib.import_module("sub" + "process").run(["true"]).returncode
    if route == "multiprocessing_fork":
        mp = importlib.import_module("multi" + "processing")
        mp.get_context("fork").Process(target=print).start()
        return "started"
    if route == "ctypes_fork":
        pid = checked(LIBC.fork(), "fork")
        if pid == 0:
            os._exit(0)
        return pid
    if route == "raw_clone":
        pid = checked(LIBC.syscall(NUMBERS["clone"], 17, 0, 0, 0, 0), "clone")  # SIGCHLD
        if pid == 0:
            os._exit(0)
        return pid
    if route == "exec_by_name":
        getattr(os, "exec" + "v")("/bin/true", ["true"])
    if route == "private_socket":
        return importlib.import_module("_soc" + "ket").socket(2, 1).fileno()
    if route == "ctypes_socket":
        return checked(LIBC.socket(2, 1, 0), "socket")
    if route == "urllib":
        return importlib.import_module("urllib.request").urlopen("http://192.0.2.1/", timeout=2)
    if route == "netlink":
        return importlib.import_module("_socket").socket(16, 3, 0).fileno()
    if route == "io_open_write":
        importlib.import_module("io").open("/work/io", "w").write("x")
    if route == "os_open_write":
        return os.open("/work/os", os.O_CREAT | os.O_WRONLY, 0o600)
    if route == "pathlib_write":
        importlib.import_module("pathlib").Path("/work/pathlib").write_text("x")
    if route == "ctypes_open_write":
        return checked(LIBC.open(b"/work/ctypes", 0o101, 0o600), "open", "/work/ctypes")
    if route == "shm_write":
        open("/dev/shm/shm", "w").write("x")
    if route == "open_code_read":
        return importlib.import_module("io").open_code("/var/lib/dpkg/status").read(10).hex()
    if route == "frame_builtins_read":
        reader = sys._getframe().f_builtins["op" + "en"]
        return reader("/var/lib/dpkg/status").read(10)
    if route == "listdir_root":
        return os.listdir("/")
    if route == "environ_by_name":
        return getattr(os, "envi" + "ron")["TOOLSMITH_PASS_ENV"]
    if route == "ptrace":
        checked(LIBC.ptrace(16, 1, None, None), "ptrace")  # PTRACE_ATTACH to PID 1
    if route == "unshare":
        checked(LIBC.unshare(0x10000000), "unshare")  # CLONE_NEWUSER
    if route == "mount":
        checked(LIBC.mount(b"none", b"/tmp", b"tmpfs", 0, None), "mount")
    if route == "keyctl":
        checked(LIBC.syscall(NUMBERS["keyctl"], 0, -3, 0, 0, 0), "keyctl")
    if route == "io_uring":
        params = ctypes.create_string_buffer(120)
        checked(LIBC.syscall(NUMBERS["io_uring_setup"], 4, params), "io_uring_setup")
    if route == "leaks":
        return {
            "getenv": [
                LIBC.getenv(name.encode()) is not None
                for name in ("PYTHONPATH", "TOOLSMITH_PASS_ENV", "HYPOTHESIS_STORAGE_DIRECTORY")
            ],
            "environ": sorted(os.environ),
        }
    return "not attempted: " + route
'''

DECLARED_CAPABILITIES = [
    "subprocess",
    "fs:write:/work/out",
    "fs:write:/tmp/x",
    f"env:{SECRET_NAME}",
]

DECLARED = rf'''
import os
import subprocess
import threading


def declared(use):
    if use == "subprocess":
        return subprocess.run(["echo", "ran"], capture_output=True, text=True).stdout
    if use == "write_work":
        with open("/work/out/result.txt", "w") as f:
            f.write("kept")
        with open("/work/out/result.txt") as f:
            return f.read()
    if use == "write_tmp":
        with open("/tmp/x", "w") as f:
            f.write("tmp")
        with open("/tmp/x") as f:
            return f.read()
    if use == "list_work":
        return os.listdir("/work/out")
    if use == "env":
        return os.environ["{SECRET_NAME}"]
    if use == "thread":
        seen = []
        t = threading.Thread(target=lambda: seen.append("thread"))
        t.start()
        t.join()
        return seen[0]
    raise ValueError(use)
'''

DECLARED_RESULTS = {
    "subprocess": "ran\n",
    "write_work": "kept",
    "write_tmp": "tmp",
    "env": SECRET,
    "thread": "thread",
}
