"""The static analysis by kind: every capability, reached by every route a tool could take, is
either resolved to that capability or flagged dynamic; plain code stays clean.

Each case is one hostile route (aliasing, getattr with constant strings, importlib, __import__,
from-imports, star imports, attribute chains, re-exports, private twins, modules handed on as
values, string annotations, format strings, object reconstruction). The analysis is lint and
the restricted runtime's gate; the kernel barrier in the Docker paths holds without it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_analysis import errors, make_spec
from toolsmith.analysis import analyze, capability_of


def kinds(code: str, **spec_fields: Any) -> set[str]:
    """The capability kinds the blocking findings name: "fs:read:/x" reads as "fs:read"."""
    found = set()
    for f in errors(code, **spec_fields):
        cap = f.capability or ""
        found.add(":".join(cap.split(":")[:2]) if cap.startswith("fs:") else cap.split(":")[0])
    return found


def tool(body: str, head: str = "") -> str:
    """A module with ``head`` at the top and ``body`` as the tool's (indented) body."""
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return f"{head}\n\ndef tool(text):\n{lines}"


REDUCE = """\
import copy


class A:
    def __reduce__(self):
        return (print, ("x",))


def tool(text):
    return copy.copy(A())
"""

CLASS_ATTRIBUTE = """\
import os


class Runner:
    m = os


def tool(text):
    return Runner().m.system("id")
"""

OPTIONAL_HEAD = """\
try:
    import zoneinfo
except ImportError:
    zoneinfo = None
"""
OPTIONAL = "if zoneinfo is None:\n    raise ValueError(text)\nreturn zoneinfo.ZoneInfo(text).key"

# (route, code, the kind it must be reported as)
ROUTES: list[tuple[str, str, str]] = [
    # --- subprocess ------------------------------------------------------------------------
    ("subprocess alias", tool("return s.run(['id'])", "import subprocess as s"), "subprocess"),
    (
        "os.system from-import",
        tool("return run('id')", "from os import system as run"),
        "subprocess",
    ),
    ("os star import", tool("return system('id')", "from os import *"), "subprocess"),
    ("os exec* by star", tool("return execv('/bin/sh', ['sh'])", "from os import *"), "subprocess"),
    ("getattr folded", tool("return getattr(os, 'sys' + 'tem')('id')", "import os"), "subprocess"),
    (
        "getattr f-string",
        tool("return getattr(os, f'sys{\"tem\"}')('id')", "import os"),
        "subprocess",
    ),
    (
        "getattr join",
        tool("return getattr(os, ''.join(['sy', 'stem']))('id')", "import os"),
        "subprocess",
    ),
    (
        "getattr value handed on",
        tool("f = [getattr(os, 'system')]\nreturn f[0]('id')", "import os"),
        "subprocess",
    ),
    (
        "nested getattr",
        tool("return getattr(getattr(os, 'path'), 'os').system('id')", "import os"),
        "subprocess",
    ),
    ("attribute chain", tool("return os.path.os.system('id')", "import os"), "subprocess"),
    ("re-exported os", tool("return random._os.system('id')", "import random"), "subprocess"),
    (
        "re-exported subprocess",
        tool("return asyncio.subprocess.PIPE", "import asyncio"),
        "subprocess",
    ),
    ("posix twin", tool("return posix.system('id')", "import posix"), "subprocess"),
    (
        "private posixsubprocess",
        tool("return _posixsubprocess.fork_exec", "import _posixsubprocess"),
        "subprocess",
    ),
    ("private os member", tool("return os._execvpe('sh', ['sh'])", "import os"), "dynamic"),
    (
        "methodcaller",
        tool("return operator.methodcaller('system', 'id')(os)", "import operator, os"),
        "subprocess",
    ),
    (
        "attrgetter",
        tool("return operator.attrgetter('popen')(os)('id')", "import operator, os"),
        "subprocess",
    ),
    (
        "C twin of operator",
        tool("return _operator.attrgetter(text)(os)", "import _operator, os"),
        "dynamic",
    ),
    ("__import__", tool("return __import__('subprocess').run(['id'])"), "subprocess"),
    ("__import__ dotted", tool("return __import__('os.path').system('id')"), "subprocess"),
    (
        "importlib",
        tool("return importlib.import_module('sub' + 'process').run(['id'])", "import importlib"),
        "subprocess",
    ),
    ("alias chain", tool("c = b\nb = a\na = os\nreturn c.system('id')", "import os"), "subprocess"),
    ("tuple alias", tool("a, b = os, 1\nreturn a.system('id')", "import os"), "subprocess"),
    ("walrus alias", tool("(r := os.system)\nreturn r('id')", "import os"), "subprocess"),
    ("annotated alias", tool("r: object = os.popen\nreturn r('id')", "import os"), "subprocess"),
    (
        "module handed on",
        tool("return run(os)", "import os\n\ndef run(m):\n    return m.system('id')"),
        "dynamic",
    ),
    ("module in a list", tool("return [os][0].system('id')", "import os"), "dynamic"),
    (
        "module as default",
        "import os\n\ndef tool(text, m=os):\n    return m.system('id')\n",
        "dynamic",
    ),
    (
        "module in a loop",
        tool("for m in (os,):\n    return m.system('id')", "import os"),
        "dynamic",
    ),
    ("platform helpers", tool("return platform.architecture()", "import platform"), "subprocess"),
    ("uuid.getnode", tool("return uuid.getnode()", "import uuid"), "subprocess"),
    ("pty", tool("return pty.spawn('sh')", "import pty"), "subprocess"),
    (
        "event loop",
        tool("return asyncio.get_event_loop().subprocess_exec", "import asyncio"),
        "subprocess",
    ),
    (
        "process pool by star",
        tool("return ProcessPoolExecutor()", "from concurrent.futures import *"),
        "subprocess",
    ),
    ("module as a class attribute", CLASS_ATTRIBUTE, "dynamic"),
    (
        "module from getattr handed on",
        tool("return run(getattr(random, '_os'))", "import random"),
        "dynamic",
    ),
    ("process state", tool("return os.setsid()", "import os"), "dynamic"),
    ("psutil", tool("return psutil.Popen(['id'])", "import psutil"), "subprocess"),
    # --- network ---------------------------------------------------------------------------
    ("socket twin", tool("return _socket.socket()", "import _socket"), "network"),
    (
        "socket re-exported",
        tool("return email.utils.socket.getfqdn()", "import email.utils"),
        "network",
    ),
    (
        "urllib from-import",
        tool("return urlopen(text).read()", "from urllib.request import urlopen"),
        "network",
    ),
    (
        "http star",
        tool("return HTTPConnection('example.com')", "from http.client import *"),
        "network",
    ),
    ("getattr socket", tool("return getattr(__import__('so' + 'cket'), 'socket')()"), "network"),
    (
        "logging socket handler",
        tool("return logging.handlers.SocketHandler('h', 1)", "import logging.handlers"),
        "network",
    ),
    (
        "xml fetches a system id",
        tool("return xml.sax.saxutils.prepare_input_source(text)", "import xml.sax.saxutils"),
        "network",
    ),
    (
        "ssl re-exported",
        tool("return http.client.ssl.create_default_context()", "import http.client"),
        "network",
    ),
    # --- fs:read ---------------------------------------------------------------------------
    ("open", tool("return open('/etc/passwd').read()"), "fs:read"),
    ("io twin", tool("return _io.open('/etc/passwd').read()", "import _io"), "fs:read"),
    (
        "pure-python io twin",
        tool("return _pyio.open('/etc/passwd').read()", "import _pyio"),
        "fs:read",
    ),
    ("codecs.open", tool("return codecs.open('/etc/passwd').read()", "import codecs"), "fs:read"),
    (
        "tokenize.open",
        tool("return tokenize.open('/etc/passwd').read()", "import tokenize"),
        "fs:read",
    ),
    ("os.fdopen", tool("return os.fdopen(0).read()", "import os"), "fs:read"),
    ("os.path helpers", tool("return os.path.getmtime(text)", "import os"), "fs:read"),
    ("posixpath twin", tool("return posixpath.exists(text)", "import posixpath"), "fs:read"),
    ("abspath reads the cwd", tool("return os.path.abspath(text)", "import os"), "fs:read"),
    (
        "linecache",
        tool("return linecache.getline('/etc/passwd', 1)", "import linecache"),
        "fs:read",
    ),
    ("filecmp", tool("return filecmp.cmp(text, '/etc/passwd')", "import filecmp"), "fs:read"),
    (
        "pathlib by re-export",
        tool("return zipfile.Path(text).read_text()", "import zipfile"),
        "fs:read",
    ),
    (
        "path methods",
        tool("return Path('/etc/passwd').read_text()", "from pathlib import Path"),
        "fs:read",
    ),
    (
        "ElementTree.parse",
        tool("return ET.parse(text)", "import xml.etree.ElementTree as ET"),
        "fs:read",
    ),
    (
        "sax resolves entities",
        tool("return xml.sax.parse(text, None)", "import xml.sax"),
        "fs:read",
    ),
    ("minidom.parse", tool("return minidom.parse(text)", "from xml.dom import minidom"), "fs:read"),
    (
        "ElementInclude",
        tool("return ElementInclude.include(text)", "from xml.etree import ElementInclude"),
        "fs:read",
    ),
    ("lxml", tool("return etree.parse(text)", "from lxml import etree"), "fs:read"),
    ("glob", tool("return glob.glob('/etc/*')", "import glob"), "fs:read"),
    ("path probes", tool("return Path(text).exists()", "from pathlib import Path"), "fs:read"),
    ("path home", tool("return P.home()", "import pathlib\nP = pathlib.Path"), "env"),
    # --- fs:write --------------------------------------------------------------------------
    ("open for writing", tool("return open('/tmp/x', 'w').write(text)"), "fs:write"),
    ("shutil re-exported os", tool("return shutil.os.remove(text)", "import shutil"), "fs:write"),
    ("tempfile", tool("return tempfile.mkstemp()", "import tempfile"), "fs:write"),
    ("os.dup2 reaches the runner", tool("return os.dup2(1, 0)", "import os"), "fs:write"),
    ("os.close", tool("return os.close(3)", "import os"), "fs:write"),
    ("gzip file object", tool("return gzip.GzipFile('/tmp/x', 'wb')", "import gzip"), "fs:write"),
    (
        "ElementTree.write",
        tool(
            "return ET.ElementTree(ET.fromstring(text)).write('/tmp/x')",
            "import xml.etree.ElementTree as ET",
        ),
        "fs:write",
    ),
    ("os.chdir", tool("return os.chdir('/tmp')", "import os"), "fs:write"),
    ("sqlite twin", tool("return _sqlite3.connect('/tmp/x')", "import _sqlite3"), "fs:write"),
    # --- env -------------------------------------------------------------------------------
    ("environ by star", tool("return environ['HOME']", "from os import *"), "env"),
    ("getenv by getattr", tool("return getattr(os, 'get' + 'env')('HOME')", "import os"), "env"),
    ("expandvars", tool("return os.path.expandvars('$HOME')", "import os"), "env"),
    ("expanduser", tool("return os.path.expanduser('~')", "import os"), "env"),
    ("getpass.getuser", tool("return getpass.getuser()", "import getpass"), "env"),
    ("environ re-exported", tool("return logging.os.environ['HOME']", "import logging"), "env"),
    # --- dynamic: import machinery, deserialisation, introspection ------------------------
    ("pickle twin", tool("return _pickle.loads(text.encode())", "import _pickle"), "dynamic"),
    ("copyreg", tool("return copyreg.dispatch_table", "import copyreg"), "dynamic"),
    ("yaml.load", tool("return yaml.load(text)", "import yaml"), "dynamic"),
    ("sys.meta_path", tool("return sys.meta_path", "import sys"), "dynamic"),
    ("sys.path_hooks by star", tool("return path_hooks", "from sys import *"), "dynamic"),
    ("sys re-exported", tool("return collections._sys.modules", "import collections"), "dynamic"),
    (
        "builtins re-exported",
        tool("return reprlib.builtins.eval(text)", "import reprlib"),
        "dynamic",
    ),
    (
        "builtins from a module",
        tool("return eval(text)", "from reprlib import builtins"),
        "dynamic",
    ),
    ("help imports by name", tool("return help(text)"), "dynamic"),
    (
        "private interpreter module",
        tool("return _testinternalcapi", "import _testinternalcapi"),
        "dynamic",
    ),
    ("frozen importlib", tool("return _frozen_importlib", "import _frozen_importlib"), "dynamic"),
    ("__main__", tool("return __main__", "import __main__"), "dynamic"),
    ("command line of a module", tool("return json.tool.main()", "import json.tool"), "dynamic"),
    (
        "getattr handed on",
        tool("return functools.reduce(getattr, text.split('.'), os)", "import functools, os"),
        "dynamic",
    ),
    (
        "string annotation",
        "def tool(text: \"__import__('os').system('id')\"):\n    return text\n",
        "subprocess",
    ),
    (
        "annotation evaluator",
        tool("return typing.get_type_hints(tool)", "import typing"),
        "dynamic",
    ),
    ("format field", tool("return '{0.__class__}'.format(text)"), "dynamic"),
    ("folded format field", tool("return ('{0.' + '__globals__}').format(tool)"), "dynamic"),
    ("nested format field", tool("return '{0:{1._x}}'.format(text, text)"), "dynamic"),
    ("run-time template", tool("return ('{0.' + '_' * 2 + 'class__}').format(text)"), "dynamic"),
    ("template from the caller", tool("return text.format(tool)"), "dynamic"),
    ("str.format template", tool("return str.format(text, tool)"), "dynamic"),
    (
        "string.Formatter",
        tool("return string.Formatter().format(text, tool)", "import string"),
        "dynamic",
    ),
    (
        "__reduce__",
        REDUCE,
        "dynamic",
    ),
    (
        "private stdlib member",
        tool("return warnings._getcategory(text)", "import warnings"),
        "dynamic",
    ),
    ("format handed on", tool("f = text.format\nreturn f(tool)"), "dynamic"),
    ("signal", tool("return signal.alarm(1)", "import signal"), "dynamic"),
    ("atexit", tool("return atexit.register(print)", "import atexit"), "dynamic"),
    (
        "frames through traceback",
        tool("return traceback.extract_stack()", "import traceback"),
        "dynamic",
    ),
]


@pytest.mark.parametrize(
    ("code", "kind"), [(c, k) for _, c, k in ROUTES], ids=[r for r, _, _ in ROUTES]
)
def test_every_route_to_a_capability_is_resolved_or_dynamic(code: str, kind: str) -> None:
    assert kind in kinds(code), analyze(code, make_spec()).failure_text()


PLAIN: list[tuple[str, str]] = [
    ("os.path.join", tool("return os.path.join('a', text)", "import os")),
    ("sys.maxsize", tool("return sys.maxsize + sys.getsizeof(text)", "import sys")),
    ("literal template", tool("return '{}: {:.2f}'.format(text, 1.5)")),
    ("constant template", tool("return FMT.format(text)", "FMT = '{0} and {0}'")),
    ("f-string", tool("return f'{text!r:>10}'")),
    ("math star import", tool("return sqrt(len(text))", "from math import *")),
    ("future annotations", tool("return text", "from __future__ import annotations")),
    (
        "ElementTree from a string",
        tool("return ET.tostring(ET.fromstring(text))", "import xml.etree.ElementTree as ET"),
    ),
    ("C accelerator of a pure module", tool("return _json.scanstring(text, 0)", "import _json")),
    ("plain annotation", "def tool(text: 'str') -> 'list[str]':\n    return [text]\n"),
    ("getattr of a public name", tool("return getattr(text, 'upper')()")),
    ("system tables", tool("return mimetypes.guess_type(text)[0]", "import mimetypes")),
    ("optional module tested", tool(OPTIONAL, OPTIONAL_HEAD)),
    ("module probed", tool("return hasattr(os, 'fork') and not os", "import os")),
    ("module alias", tool("j = json\nreturn j.dumps(text)", "import json")),
    ("sys.stdout", tool("sys.stdout.write(text)\nreturn 1", "import sys")),
    ("http status codes", tool("return HTTPStatus.OK.phrase", "from http import HTTPStatus")),
    (
        "sax from a string",
        tool("return xml.sax.parseString(text.encode(), None)", "import xml.sax"),
    ),
]


@pytest.mark.parametrize("code", [c for _, c in PLAIN], ids=[r for r, _ in PLAIN])
def test_plain_code_stays_clean(code: str) -> None:
    report = analyze(code, make_spec())
    assert report.errors == [], report.failure_text()


def test_declared_capability_reached_by_a_route_is_accepted() -> None:
    """Resolving a route names the real capability, so declaring it is enough."""
    code = tool("return environ['HOME']", "from os import *")
    assert kinds(code) == {"env"}
    assert kinds(code, capabilities=["env:HOME"]) == set()
    code = tool("return getattr(os, 'sys' + 'tem')(text)", "import os")
    assert kinds(code, capabilities=["subprocess"]) == set()


def test_env_variables_are_named_through_helpers() -> None:
    """expandvars and getuser read named variables: declaring those, and only those, is enough."""
    code = tool("return os.path.expandvars('${HOME}/x')", "import os")
    assert kinds(code, capabilities=["env:HOME"]) == set()
    assert kinds(code, capabilities=["env:PATH"]) == {"env"}
    code = tool("return getpass.getuser()", "import getpass")
    assert kinds(code, capabilities=["env:HOME"]) == {"env"}


def test_twins_and_re_exports_read_as_the_public_module() -> None:
    assert capability_of("_socket.socket") == capability_of("socket.socket") == "network"
    assert capability_of("nt.system") == "subprocess"
    assert capability_of("random._os.system") == "subprocess"
    assert capability_of("_json.scanstring") is None
    assert capability_of("_sre.compile") == "dynamic"


def test_findings_keep_their_line() -> None:
    code = "import os\n\n\ndef tool(text):\n    x = 1\n    return [os][0]\n"
    report = analyze(code, make_spec())
    assert [f.line for f in report.errors] == [6]
    assert "hands the module os on as a value" in report.errors[0].message
