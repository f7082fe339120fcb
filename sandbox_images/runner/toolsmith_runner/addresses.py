"""Which addresses the egress proxy may reach for a granted *name*: public unicast ones only.

Pure (no IO), standard library only. ``refusal(ip)`` says why an address is not public, judging
every IPv4 address an IPv6 one carries too (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``, Teredo's
server and client), since a connection to those forms can end at the embedded IPv4 host.
``ipaddress``'s own ``is_global`` misses some forms on Python 3.11 (multicast is "global",
``::7f00:1`` is "global"), hence the explicit rules. Sources: the IANA IPv4/IPv6 special-purpose
address registries (RFC 6890), RFC 6598 (100.64/10), RFC 6052 and RFC 8215 (NAT64), RFC 3056
(6to4), RFC 4380 (Teredo), RFC 4291 2.5.5 (embedded IPv4).

``host_self(ip)`` is the narrower rule for IP-literal grants: an address that is the proxy's own
machine (loopback, unspecified) or no single host (multicast, broadcast) is never reached, granted
or not.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 carrier-grade NAT, not global
IETF = ipaddress.IPv4Network("192.0.0.0/24")  # RFC 6890 protocol assignments, not global
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a site's own translator
COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible (and :: and ::1)
TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 SIIT IPv4-translated


def unwrap(ip: Address) -> Address:
    """The IPv4 address of an IPv4-mapped IPv6 address (the host a connection reaches), else
    ``ip`` itself."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def embedded(ip: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (none for an IPv4 one or a plain IPv6 one)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in NAT64 or ip in TRANSLATED or (ip in COMPATIBLE and int(ip) > 1):
        found.append(low)
    return found


def _kind(ip: Address) -> str | None:
    if ip.is_unspecified:
        return "unspecified (this host)"
    if ip.is_loopback:
        return "loopback (this host)"
    if ip.is_link_local:
        return "link-local (where cloud metadata services such as 169.254.169.254 live)"
    if ip.is_multicast or ip == BROADCAST:
        return "multicast or broadcast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in SHARED:
        return "shared carrier-grade NAT space (100.64.0.0/10)"
    if isinstance(ip, ipaddress.IPv4Address) and ip in IETF:
        return "IETF protocol assignment (192.0.0.0/24)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in NAT64_LOCAL:
        return "local-use NAT64 (64:ff9b:1::/48)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in COMPATIBLE:
        return "IPv4-compatible IPv6 (deprecated)"
    if ip.is_private:
        return "private or special-purpose (RFC 1918, unique-local, documentation...)"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def refusal(ip: Address) -> str | None:
    """Why ``ip`` is not a public unicast address a name grant may reach, e.g.
    ``"10.0.0.1: private or special-purpose (...)"``; None when it is public."""
    inner = unwrap(ip)
    for v4 in embedded(inner):
        kind = _kind(v4)
        if kind is not None:
            return f"{ip} embeds {v4}: {kind}"
    if inner in NAT64:
        # The well-known prefix translates to the embedded host, judged above; ipaddress calls
        # the prefix "reserved" only because it lies in ::/8.
        return None
    kind = _kind(inner)
    if kind is not None:
        return f"{inner}: {kind}"
    return None


def host_self(ip: Address) -> str | None:
    """Why ``ip`` (or the IPv4 address it embeds) names the proxy's own machine or no single
    host, so that even an IP-literal grant never reaches it; None otherwise."""
    for each in [unwrap(ip), *embedded(unwrap(ip))]:
        if each.is_unspecified or each.is_loopback:
            return f"{each} is this host itself"
        if each.is_multicast or each == BROADCAST:
            return f"{each} is not one host (multicast or broadcast)"
    return None
