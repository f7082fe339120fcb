"""The egress proxy's address classifier (``toolsmith_runner.addresses``, in-image code): pure."""

from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path
from types import ModuleType

import pytest

import toolsmith


def _load() -> ModuleType:
    path = Path(toolsmith.__file__).parent / "_sandbox_images/runner/toolsmith_runner/addresses.py"
    spec = importlib.util.spec_from_file_location("egress_addresses", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


addresses = _load()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.17.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fd00::", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("192.0.0.8", "IETF protocol"),
        ("198.18.0.1", "private or special-purpose"),
        ("240.0.0.1", "private or special-purpose"),
        ("224.0.0.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("64:ff9b::a00:1", "embeds 10.0.0.1"),
        ("64:ff9b::7f00:1", "embeds 127.0.0.1"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("2002:0a00:0001::", "embeds 10.0.0.1"),
        ("2002:a9fe:a9fe::1", "embeds 169.254.169.254"),
        ("::7f00:1", "embeds 127.0.0.1"),
        ("::ffff:0:a00:1", "embeds 10.0.0.1"),
        ("::ffff:172.17.0.1", "172.17.0.1: private"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private or special-purpose"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    """Loopback, private, link-local, shared NAT, special-purpose, multicast and every IPv6 form
    embedding such an IPv4 address are refused, the reason naming what they are."""
    why = addresses.refusal(ipaddress.ip_address(address))
    assert why is not None and kind in why


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    """Public unicast addresses, and IPv6 forms embedding only public ones, are reachable."""
    assert addresses.refusal(ipaddress.ip_address(address)) is None


def test_ipv4_mapped_addresses_unwrap_to_the_host_they_reach() -> None:
    """::ffff:a.b.c.d is a.b.c.d (what a dual-stack socket connects to); other forms stay."""
    assert addresses.unwrap(ipaddress.ip_address("::ffff:10.0.0.1")) == ipaddress.ip_address(
        "10.0.0.1"
    )
    assert addresses.unwrap(ipaddress.ip_address("fd00::1")) == ipaddress.ip_address("fd00::1")


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",
        "127.0.0.1",
        "127.255.0.1",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:0.0.0.0",
        "64:ff9b::7f00:1",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
    ],
)
def test_host_self_covers_the_proxys_own_machine_in_every_form(address: str) -> None:
    """Even an IP-literal grant never reaches loopback, unspecified, multicast or broadcast."""
    assert addresses.host_self(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["10.0.0.5", "172.17.0.2", "fd00::1", "100.64.0.1", "8.8.8.8"])
def test_private_addresses_are_not_host_self(address: str) -> None:
    """A private address is another machine: a literal grant (approved) may reach it."""
    assert addresses.host_self(ipaddress.ip_address(address)) is None
