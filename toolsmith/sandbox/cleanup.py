"""No leaked containers: close pools at exit and on SIGTERM, and sweep what dead owners left."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import weakref
from types import FrameType
from typing import Protocol

from toolsmith.log import get_logger
from toolsmith.sandbox.containers import LABEL, OWNER_LABEL, owner_id
from toolsmith.sandbox.engine import Engine, docker_errors

log = get_logger("toolsmith.sandbox")


class Closable(Protocol):
    def close(self) -> None: ...


_live: weakref.WeakSet[Closable] = weakref.WeakSet()
_lock = threading.Lock()
_installed = False


def register(obj: Closable) -> None:
    """Close ``obj`` at interpreter exit (normal, Ctrl-C) and on SIGTERM."""
    global _installed
    with _lock:
        _live.add(obj)
        if _installed:
            return
        _installed = True
    import atexit

    atexit.register(close_all)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, TypeError):
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)


def unregister(obj: Closable) -> None:
    with _lock:
        _live.discard(obj)


def close_all() -> None:
    with _lock:
        pending = list(_live)
    for obj in pending:
        with contextlib.suppress(Exception):
            obj.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    close_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def owner_alive(owner: str) -> bool:
    """False only for an owner on this host whose process is gone (or its pid was reused)."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return owner_id(pid) == owner or start == "0"


def remove_owned(engine: Engine, owner: str | None = None) -> int:
    """Remove every sandbox container and egress network of ``owner`` (default: this process);
    returns the count of containers."""
    owner = owner or owner_id()
    selector = {"label": f"{OWNER_LABEL}={owner}"}
    with docker_errors("listing sandbox containers"):
        found = engine.api.containers(all=True, filters=selector)
        networks = engine.api.networks(filters=selector)
    removed = _remove(engine, [c["Id"] for c in found])
    _remove_networks(engine, [n["Id"] for n in networks])
    return removed


def sweep_stale(engine: Engine) -> int:
    """Remove sandbox containers, then egress networks, whose owner process on this host is gone;
    returns the count of containers."""
    with docker_errors("listing sandbox containers"):
        found = engine.api.containers(all=True, filters={"label": f"{LABEL}=1"})
        networks = engine.api.networks(filters={"label": f"{LABEL}=1"})
    stale = [c["Id"] for c in found if not owner_alive(c.get("Labels", {}).get(OWNER_LABEL, ""))]
    stale_networks = [
        n["Id"] for n in networks if not owner_alive((n.get("Labels") or {}).get(OWNER_LABEL, ""))
    ]
    if stale or stale_networks:
        log.info(
            "sweeping stale sandbox containers",
            count=len(stale),
            networks=len(stale_networks),
        )
    removed = _remove(engine, stale)
    _remove_networks(engine, stale_networks)
    return removed


def _remove(engine: Engine, ids: list[str]) -> int:
    removed = 0
    for cid in ids:
        with contextlib.suppress(Exception):
            engine.api.remove_container(cid, force=True)
            removed += 1
    return removed


def _remove_networks(engine: Engine, ids: list[str]) -> None:
    for nid in ids:
        with contextlib.suppress(Exception):
            engine.api.remove_network(nid)
