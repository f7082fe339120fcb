"""The capability table: which dotted names need which capability kind, as data.

Kinds are ``network``, ``subprocess``, ``fs:read``, ``fs:write``, ``env`` (the declarable ones,
see ``ToolSpec.capabilities``) and ``native`` and ``dynamic`` (never accepted). The tables are
read by the rules; nothing here looks at code. ``canonical`` says under which name the table
knows a dotted name (twins and re-exports), ``capability_of`` what kind it needs.
"""

from __future__ import annotations

import sys

# Reading the interpreter's own trees (/usr, /etc: tz data, mime tables, the user database) is
# not a capability; the run-time barrier grants it to every tool, so it is not listed here.
# Longest dotted prefix wins; ``None`` marks a pure corner of an otherwise capable module, and
# ``module.*`` is the kind of every member of a module not listed more precisely (``import sys``
# is fine, ``sys.meta_path`` is not). Filesystem entries say "read" or "write"; a declared
# fs:write covers reading the same path. Entries are grouped by kind; within a kind, by what
# reaches it: the module itself, modules that wrap or re-export it, helpers that open files.
CAPABILITIES: dict[str, str | None] = {
    **dict.fromkeys(
        [
            "socket",
            "ssl",
            "http",
            "urllib",
            "httplib2",
            "ftplib",
            "smtplib",
            "poplib",
            "imaplib",
            "nntplib",
            "telnetlib",
            "xmlrpc",
            "socketserver",
            "smtpd",
            "asyncore",
            "asynchat",
            "nis",
            "syslog",
            "wsgiref.simple_server",
            "asyncio.open_connection",
            "asyncio.start_server",
            "asyncio.open_unix_connection",
            "asyncio.start_unix_server",
            "asyncio.streams",
            "asyncio.base_events",
            "asyncio.selector_events",
            "logging.handlers.SocketHandler",
            "logging.handlers.DatagramHandler",
            "logging.handlers.SysLogHandler",
            "logging.handlers.HTTPHandler",
            "logging.handlers.SMTPHandler",
            # XML readers fetch a system id that is a URL.
            "xml.sax.saxutils.prepare_input_source",
            "xml.dom.xmlbuilder",
            # Distributions whose purpose is the network.
            "urllib3",
            "requests",
            "httpx",
            "aiohttp",
            "websocket",
            "websockets",
            "paramiko",
            "pycurl",
            "dns",
            "grpc",
            "redis",
            "pymongo",
            "psycopg",
            "psycopg2",
            "pymysql",
            "boto3",
            "botocore",
            "socks",
            "zmq",
        ],
        "network",
    ),
    **dict.fromkeys(["urllib.parse", "http.HTTPStatus", "http.HTTPMethod"], None),
    **dict.fromkeys(
        [
            "subprocess",
            "pty",
            "pipes",
            "multiprocessing",
            "_posixsubprocess",
            "concurrent.futures.ProcessPoolExecutor",
            "concurrent.futures.process",
            "asyncio.create_subprocess_exec",
            "asyncio.create_subprocess_shell",
            "asyncio.subprocess",
            "asyncio.base_subprocess",
            "asyncio.unix_events",
            "pydoc",
            "webbrowser",
            "ensurepip",
            "venv",
            "distutils",
            "os.system",
            "os.popen",
            "os.exec*",
            "os.spawn*",
            "os.posix_spawn*",
            "os.fork*",
            "os.kill*",
            "os.startfile",
            "os.register_at_fork",
            "os.pidfd_open",
            "psutil",
            "invoke",
            "fabric",
            "signal.pthread_kill",
            "signal.pidfd_send_signal",
            # Helpers that run programs to answer: ``file``, ``uname -p``, ``ip link``.
            "platform.architecture",
            "platform.processor",
            "uuid.getnode",
            "pexpect",
            "ptyprocess",
            "sh",
            "plumbum",
            "sarge",
        ],
        "subprocess",
    ),
    **dict.fromkeys(
        [
            "builtins.open",
            "io.open",
            "io.open_code",
            "io.FileIO",
            "codecs.open",
            "tokenize.open",
            "wave.open",
            "aifc.open",
            "sunau.open",
            "os.open",
            "os.fdopen",
            "os.read",
            "os.pread",
            "os.readv",
            "os.preadv",
            "linecache",
            "os.listdir",
            "os.scandir",
            "os.walk",
            "os.fwalk",
            "os.stat",
            "os.lstat",
            "os.fstat",
            "os.statvfs",
            "os.fstatvfs",
            "os.access",
            "os.readlink",
            "os.getxattr",
            "os.listxattr",
            "os.getcwd",
            "os.getcwdb",
            "os.getlogin",
            "os.path.exists",
            "os.path.lexists",
            "os.path.isfile",
            "os.path.isdir",
            "os.path.islink",
            "os.path.ismount",
            "os.path.isjunction",
            "os.path.getsize",
            "os.path.getmtime",
            "os.path.getatime",
            "os.path.getctime",
            "os.path.samefile",
            "os.path.realpath",
            "os.path.abspath",
            "os.path.relpath",
            "glob",
            "fileinput",
            "filecmp",
            "netrc",
            "getpass.getpass",
            "imghdr",
            "sndhdr",
            "pstats",
            "pyclbr",
            "shutil.which",
            "shutil.disk_usage",
            "zipfile.Path",
            "zipfile.is_zipfile",
            "tarfile.is_tarfile",
            # XML readers that open what a file name or an external entity names.
            "xml.sax.*",
            "xml.sax.handler.feature_external_ges",
            "xml.sax.handler.feature_external_pes",
            "xml.dom.minidom.parse",
            "xml.dom.pulldom.parse",
            "xml.dom.expatbuilder.parse",
            "xml.etree.ElementTree.parse",
            "xml.etree.ElementTree.iterparse",
            "xml.etree.ElementInclude",
            "lxml",
        ],
        "fs:read",
    ),
    **dict.fromkeys(
        [
            "xml.sax.parseString",
            "xml.sax.SAXException",
            "xml.sax.SAXParseException",
            "xml.sax.SAXNotRecognizedException",
            "xml.sax.SAXNotSupportedException",
            "xml.sax.handler",
            "xml.sax.saxutils",
            "lxml.etree.tostring",
            "lxml.etree.Element",
            "lxml.etree.SubElement",
            "lxml.etree.QName",
            "lxml.html.tostring",
        ],
        None,
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
            "os.chflags",
            "os.lchflags",
            "os.link",
            "os.symlink",
            "os.truncate",
            "os.ftruncate",
            "os.utime",
            "os.write",
            "os.pwrite",
            "os.writev",
            "os.pwritev",
            "os.sendfile",
            "os.copy_file_range",
            "os.splice",
            "os.posix_fallocate",
            "os.fsync",
            "os.fdatasync",
            "os.sync",
            "os.lockf",
            "os.memfd_create",
            "os.setxattr",
            "os.removexattr",
            "os.mkfifo",
            "os.mknod",
            "os.lchown",
            "os.lchmod",
            "os.fchmod",
            "os.fchown",
            "os.umask",
            "os.chdir",
            "os.fchdir",
            "os.chroot",
            # The process's own descriptors: closing or duplicating one reaches the runner's.
            "os.close",
            "os.closerange",
            "os.dup",
            "os.dup2",
            "os.lseek",
            "os.pipe",
            "os.pipe2",
            "os.openpty",
            "os.login_tty",
            "os.set_blocking",
            "os.set_inheritable",
            "os.eventfd",
            "logging.FileHandler",
            "logging.handlers",
            "py_compile",
            "compileall",
            "zipapp",
            "mailbox",
            "cgitb",
            "shutil",
            "tempfile",
            "sqlite3",
            "shelve",
            "dbm",
            "zipfile.ZipFile",
            "zipfile.PyZipFile",
            "tarfile.open",
            "tarfile.TarFile",
            "gzip.open",
            "gzip.GzipFile",
            "bz2.open",
            "bz2.BZ2File",
            "lzma.open",
            "lzma.LZMAFile",
            "xml.etree.ElementTree.ElementTree",
        ],
        "fs:write",
    ),
    **dict.fromkeys(
        [
            "os.environ",
            "os.environb",
            "os.getenv",
            "os.getenvb",
            "os.putenv",
            "os.unsetenv",
            "os.get_exec_path",
            "os.path.expandvars",
            "os.path.expanduser",
            "getpass.getuser",
            "locale.getdefaultlocale",
            "time.tzset",
            "cgi",
        ],
        "env",
    ),
    **dict.fromkeys(["ctypes", "cffi", "mmap"], "native"),
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
            # help() imports the module a string names.
            "builtins.help",
            "__main__",
            "importlib",
            "imp",
            "pkgutil",
            "modulefinder",
            "runpy",
            "code",
            "codeop",
            "rlcompleter",
            "readline",
            "idlelib",
            "inspect",
            "gc",
            "types.FunctionType",
            "types.CodeType",
            "types.LambdaType",
            "types.FrameType",
            # Process state the runner shares: ids, sessions, priorities, the CPU set.
            "os.set*",
            "os.sched_*",
            "os.nice",
            "os.abort",
            # The interpreter itself: import machinery (meta_path, path_hooks), hooks, frames,
            # argv; the pure corners follow.
            "sys.*",
            "typing.get_type_hints",
            "typing.ForwardRef",
            "annotationlib",
            # Deserialisation and object reconstruction call whatever the data names.
            "marshal",
            "pickle",
            "copyreg",
            "dill",
            "cloudpickle",
            "jsonpickle",
            "joblib.load",
            "pandas.read_pickle",
            "torch.load",
            "yaml.load",
            "yaml.load_all",
            "yaml.unsafe_load",
            "yaml.unsafe_load_all",
            "yaml.full_load",
            "yaml.full_load_all",
            "yaml.Loader",
            "yaml.FullLoader",
            "yaml.UnsafeLoader",
            # They import or evaluate what a string names.
            "pydoc.locate",
            "pydoc.safeimport",
            "pydoc.importfile",
            "logging.config",
            "unittest",
            "xml.sax.make_parser",
            "functools.singledispatch",
            "functools.singledispatchmethod",
            "timeit",
            "doctest",
            "pdb",
            "trace",
            "profile",
            "cProfile",
            "site",
            "zipimport",
            # Replacement fields walk attributes named in a string: "{0.__class__}".
            "string.Formatter",
            # Code that runs outside the call, or frames walked from inside it.
            "signal",
            "faulthandler",
            "resource",
            "atexit",
            "threading.settrace",
            "threading.setprofile",
            "threading.settrace_all_threads",
            "threading.setprofile_all_threads",
            "traceback.walk_stack",
            "traceback.walk_tb",
            "traceback.extract_stack",
            "traceback.print_stack",
            "traceback.format_stack",
            "traceback.StackSummary",
        ],
        "dynamic",
    ),
    **dict.fromkeys(
        [
            "sys.maxsize",
            "sys.maxunicode",
            "sys.version",
            "sys.version_info",
            "sys.hexversion",
            "sys.api_version",
            "sys.implementation",
            "sys.byteorder",
            "sys.platform",
            "sys.float_info",
            "sys.int_info",
            "sys.hash_info",
            "sys.float_repr_style",
            "sys.flags",
            "sys.getsizeof",
            "sys.getrecursionlimit",
            "sys.setrecursionlimit",
            "sys.get_int_max_str_digits",
            "sys.getdefaultencoding",
            "sys.getfilesystemencoding",
            "sys.intern",
            "sys.stdout",
            "sys.stderr",
            "sys.exc_info",
            "sys.exception",
            "sys.exit",
            "sys.stdlib_module_names",
            "sys.builtin_module_names",
        ],
        None,
    ),
}

# Path methods that read or write whatever a Path object points at, or read the environment
# (``home``, ``expanduser``); only counted when the module reaches pathlib, since names such as
# ``open`` are common on other objects (``replace`` is left out: str.replace is everywhere).
PATH_METHODS: dict[str, str] = {
    **dict.fromkeys(
        [
            "read_text",
            "read_bytes",
            "iterdir",
            "glob",
            "rglob",
            "walk",
            "open",
            "exists",
            "is_file",
            "is_dir",
            "is_symlink",
            "is_mount",
            "is_socket",
            "is_fifo",
            "is_block_device",
            "is_char_device",
            "stat",
            "lstat",
            "owner",
            "group",
            "readlink",
            "samefile",
            "resolve",
            "absolute",
            "cwd",
        ],
        "fs:read",
    ),
    **dict.fromkeys(
        [
            "write_text",
            "write_bytes",
            "mkdir",
            "unlink",
            "rmdir",
            "touch",
            "symlink_to",
            "hardlink_to",
            "rename",
            "chmod",
            "lchmod",
        ],
        "fs:write",
    ),
    **dict.fromkeys(["home", "expanduser"], "env"),
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

# Modules under their platform names: ``posix.system`` is ``os.system``. Private twins whose
# public name is the same but for the underscore (``_socket``) need no entry.
TWINS: dict[str, str] = {
    "posix": "os",
    "nt": "os",
    "posixpath": "os.path",
    "ntpath": "os.path",
    "genericpath": "os.path",
    "_elementtree": "xml.etree.ElementTree",
}

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


# Modules that other modules hand out as attributes (``random._os``, ``reprlib.builtins``,
# ``os.path.os``): reached that way, they are themselves. Names that are also common attribute
# names (``code``, ``site``, ``trace``) are left out.
REEXPORTED = frozenset(
    {
        "os",
        "posix",
        "nt",
        "sys",
        "builtins",
        "io",
        "subprocess",
        "socket",
        "shutil",
        "importlib",
        "pickle",
        "marshal",
        "ctypes",
        "types",
        "inspect",
        "tempfile",
        "glob",
        "codecs",
        "pathlib",
        "asyncio",
        "multiprocessing",
        "signal",
        "linecache",
        "copyreg",
        "gc",
        "pty",
        "pkgutil",
        "runpy",
        "mmap",
        "urllib",
        "http",
        "ssl",
    }
)

# Members of stdlib modules that are the module's command line: they read sys.argv, files and
# stdin, and some import what argv names.
_COMMAND_LINES = frozenset({"main", "_main", "_test"})

# ``os.path.expandvars`` reads the variables its argument names; these read fixed ones.
ENV_READERS: dict[str, tuple[str, ...]] = {
    "os.get_exec_path": ("PATH",),
    "os.path.expanduser": ("HOME",),
    "getpass.getuser": ("LOGNAME", "USER", "LNAME", "USERNAME"),
    "locale.getdefaultlocale": ("LC_ALL", "LC_CTYPE", "LANG", "LANGUAGE"),
    "time.tzset": ("TZ",),
}


def _twin(module: str) -> str:
    """The public module behind a platform name or a private/C twin: ``posix`` is ``os``,
    ``posixpath`` is ``os.path``, ``_pickle`` is ``pickle``, ``_pyio`` is ``io``; anything else
    is itself."""
    if module in TWINS:
        return TWINS[module]
    if module.startswith("_") and not module.startswith("__"):
        bare = module[1:]
        for public in (bare, bare.removeprefix("py"), bare.removeprefix("c")):
            if public in sys.stdlib_module_names and not public.startswith("_"):
                return public
    return module


def canonical(name: str) -> str:
    """The name under which the table knows what a dotted ``name`` refers to.

    Twins become their public module (``_io.open`` is ``io.open``, ``posix.system`` is
    ``os.system``), and a module in ``REEXPORTED`` reached as another module's attribute is that
    module (``logging.os.environ`` is ``os.environ``; the rightmost such part wins).
    """
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = _twin(parts[i])
        if module in REEXPORTED:
            return canonical(".".join([module, *parts[i + 1 :]]))
    if parts[0] not in _TOPS:
        parts[0] = _twin(parts[0])
    return ".".join(parts)


def _lookup(parts: list[str]) -> tuple[bool, str | None]:
    """Longest matching prefix: whether any entry matched, and its kind."""
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in CAPABILITIES:
            return True, CAPABILITIES[prefix]
        for stem, cap in _WILDCARDS:
            if prefix.startswith(stem) and prefix.count(".") == stem.count("."):
                return True, cap
    return False, None


def capability_of(name: str) -> str | None:
    """The capability kind a dotted name needs, by longest matching prefix (``os.exec*`` too).

    Names are looked up as ``canonical`` spells them. Where the table has no entry, private
    stdlib modules without a public twin (``_sre``, ``_testcapi``), private members of stdlib
    modules (``os._execvpe``, ``warnings._getcategory``) and stdlib modules' command lines
    (``json.tool.main``) are ``dynamic``: what they reach is not listed anywhere.
    """
    parts = canonical(name).split(".")
    matched, cap = _lookup(parts)
    if matched:
        return cap
    top = parts[0]
    if top.startswith("_") and not top.startswith("__") and top in sys.stdlib_module_names:
        return "dynamic"
    stdlib = top in sys.stdlib_module_names
    if stdlib and any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
        return "dynamic"
    if parts[-1] in _COMMAND_LINES and len(parts) > 1 and stdlib:
        return "dynamic"
    return None


_WILDCARDS = sorted(
    ((p.removesuffix("*"), c) for p, c in CAPABILITIES.items() if p.endswith("*")),
    key=lambda w: -len(w[0]),
)
_TOPS = frozenset(p.split(".")[0] for p in CAPABILITIES)

#: Modules the table says something about: each package above a listed name (``os``,
#: ``os.path``, ``xml.sax``, ``concurrent.futures``, ``sys`` ...).
GOVERNED_MODULES = frozenset(
    ".".join(parts[:i])
    for parts in (p.split(".") for p in CAPABILITIES)
    for i in range(1, len(parts))
)

OPENERS = frozenset(
    {
        "builtins.open",
        "io.open",
        "io.FileIO",
        "codecs.open",
        "os.open",
        "os.fdopen",
        "wave.open",
        "aifc.open",
        "sunau.open",
    }
)
