"""The capability table: which dotted names need which capability kind, as data.

Kinds are ``network``, ``subprocess``, ``fs:read``, ``fs:write``, ``env`` (the declarable ones,
see ``ToolSpec.capabilities``) and ``native`` and ``dynamic`` (never accepted). The tables are
read by the rules; nothing here looks at code.
"""

from __future__ import annotations

# Longest dotted prefix wins; ``None`` marks a pure corner of an otherwise capable module.
# Filesystem entries say "read" or "write"; a declared fs:write covers reading the same path.
CAPABILITIES: dict[str, str | None] = {
    **dict.fromkeys(
        [
            "socket",
            "ssl",
            "http",
            "urllib",
            "urllib3",
            "requests",
            "httpx",
            "aiohttp",
            "websocket",
            "websockets",
            "ftplib",
            "smtplib",
            "poplib",
            "imaplib",
            "nntplib",
            "telnetlib",
            "xmlrpc",
            "socketserver",
            "asyncio.open_connection",
            "asyncio.start_server",
            "asyncio.open_unix_connection",
            "asyncio.start_unix_server",
            "_socket",
            "_ssl",
            "paramiko",
        ],
        "network",
    ),
    "urllib.parse": None,
    **dict.fromkeys(
        [
            "subprocess",
            "pty",
            "multiprocessing",
            "_multiprocessing",
            "_posixsubprocess",
            "concurrent.futures.ProcessPoolExecutor",
            "concurrent.futures.process",
            "asyncio.create_subprocess_exec",
            "asyncio.create_subprocess_shell",
            "asyncio.subprocess",
            "pydoc",
            "webbrowser",
            "pexpect",
            "os.system",
            "os.popen",
            "os.exec*",
            "os.spawn*",
            "os.posix_spawn*",
            "os.fork*",
            "os.kill*",
            "os.startfile",
        ],
        "subprocess",
    ),
    **dict.fromkeys(
        [
            "builtins.open",
            "io.open",
            "io.open_code",
            "io.FileIO",
            "_io.open",
            "_io.open_code",
            "_io.FileIO",
            "codecs.open",
            "os.open",
            "os.read",
            "os.pread",
            "linecache",
            "os.listdir",
            "os.scandir",
            "os.walk",
            "os.stat",
            "os.lstat",
            "os.access",
            "os.readlink",
            "os.getcwd",
            "os.path.exists",
            "os.path.isfile",
            "os.path.isdir",
            "os.path.getsize",
            "os.path.realpath",
            "glob",
            "fileinput",
            "shutil.which",
            "shutil.disk_usage",
        ],
        "fs:read",
    ),
    **dict.fromkeys(
        [
            "os.remove",
            "os.unlink",
            "os.rename",
            "os.renames",
            "os.replace",
            "os.mkdir",
            "os.makedirs",
            "os.rmdir",
            "os.removedirs",
            "os.chmod",
            "os.chown",
            "os.link",
            "os.symlink",
            "os.truncate",
            "os.ftruncate",
            "os.utime",
            "os.write",
            "os.pwrite",
            "os.mkfifo",
            "os.mknod",
            "os.lchown",
            "os.lchmod",
            "os.fchmod",
            "os.fchown",
            "logging.FileHandler",
            "logging.handlers",
            "py_compile",
            "compileall",
            "shutil",
            "tempfile",
            "sqlite3",
            "shelve",
            "dbm",
            "zipfile.ZipFile",
            "tarfile.open",
            "tarfile.TarFile",
            "gzip.open",
            "bz2.open",
            "lzma.open",
        ],
        "fs:write",
    ),
    **dict.fromkeys(
        ["os.environ", "os.environb", "os.getenv", "os.getenvb", "os.putenv", "os.unsetenv"], "env"
    ),
    **dict.fromkeys(["ctypes", "_ctypes", "cffi", "mmap"], "native"),
    **dict.fromkeys(
        [
            "builtins.eval",
            "builtins.exec",
            "builtins.compile",
            "builtins.__import__",
            "builtins.globals",
            "builtins.locals",
            "builtins.vars",
            "builtins.breakpoint",
            "importlib",
            "imp",
            "pkgutil",
            "runpy",
            "code",
            "codeop",
            "inspect",
            "gc",
            "marshal",
            "pickle",
            "dill",
            "types.FunctionType",
            "types.CodeType",
            "types.LambdaType",
            "types.FrameType",
            "sys._getframe",
            "sys.modules",
            "sys.settrace",
            "sys.setprofile",
            "sys.addaudithook",
            "typing.get_type_hints",
            # They import or evaluate what a string names.
            "pydoc.locate",
            "pydoc.safeimport",
            "pydoc.importfile",
            "logging.config",
            "unittest.mock",
            "timeit",
            "doctest",
            "pdb",
            "trace",
            "profile",
            "cProfile",
            "site",
            "zipimport",
        ],
        "dynamic",
    ),
}

# Path methods that read or write whatever a Path object points at; only counted when the module
# imports pathlib, since names such as ``open`` are common on other objects.
PATH_METHODS: dict[str, str] = {
    **dict.fromkeys(["read_text", "read_bytes", "iterdir", "glob", "rglob", "open"], "fs:read"),
    **dict.fromkeys(
        ["write_text", "write_bytes", "mkdir", "unlink", "rmdir", "touch", "symlink_to", "chmod"],
        "fs:write",
    ),
}

# Event-loop methods that start processes or open connections, counted when asyncio is imported.
LOOP_METHODS: dict[str, str] = {
    **dict.fromkeys(["subprocess_exec", "subprocess_shell"], "subprocess"),
    **dict.fromkeys(
        [
            "create_connection",
            "create_server",
            "create_datagram_endpoint",
            "create_unix_connection",
            "create_unix_server",
            "sock_connect",
            "getaddrinfo",
            "getnameinfo",
        ],
        "network",
    ),
}

# The os module under its platform names: ``posix.system`` is ``os.system``.
OS_ALIASES = ("posix", "nt")

# Callables that read attributes named by strings: like getattr, a computed or internal name is
# dynamic. Value: how many leading arguments are names (None: all of them).
NAME_READERS: dict[str, int | None] = {"operator.attrgetter": None, "operator.methodcaller": 1}
# functools helpers that read (and write) the attributes named in ``assigned``/``updated``;
# with the defaults they are ordinary decorators. Value: positional arguments before those.
WRAPPER_HELPERS: dict[str, int] = {"functools.update_wrapper": 2, "functools.wraps": 1}

# Dunders that are harmless to read; every other dunder attribute is a walk towards the
# interpreter's internals (``__class__``, ``__subclasses__``, ``__globals__``, ``__code__`` ...).
HARMLESS_DUNDERS = frozenset({"__init__", "__name__", "__qualname__", "__doc__", "__module__"})

# Frame, code and traceback attributes without underscores that reach interpreter state.
INTROSPECTION_ATTRS = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "tb_frame",
        "tb_next",
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "f_trace",
        "co_code",
    }
)

REFLECTIVE_BUILTINS = frozenset(
    {"builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.hasattr"}
)


def capability_of(name: str) -> str | None:
    """The capability kind a dotted name needs, by longest matching prefix (``os.exec*`` too)."""
    parts = name.split(".")
    if parts[0] in OS_ALIASES:
        parts[0] = "os"
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in CAPABILITIES:
            return CAPABILITIES[prefix]
        for stem, cap in _WILDCARDS:
            if prefix.startswith(stem) and prefix.count(".") == stem.count("."):
                return cap
    return None


_WILDCARDS = [(p.removesuffix("*"), c) for p, c in CAPABILITIES.items() if p.endswith("*")]


OPENERS = frozenset(
    {"builtins.open", "io.open", "io.FileIO", "_io.open", "_io.FileIO", "codecs.open", "os.open"}
)


def os_name(name: str) -> str:
    """``posix.open`` and ``nt.open`` are ``os.open``."""
    head, dot, rest = name.partition(".")
    return f"os{dot}{rest}" if head in OS_ALIASES else name
