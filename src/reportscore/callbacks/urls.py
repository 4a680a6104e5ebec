"""The SSRF guard: a callback URL must be http(s) and resolve only to public addresses, unless allow-listed.

Checked when a job is submitted (``422``) and again before every delivery, against a fresh DNS answer (a name that
resolved to a public address at submit time may point inside the network later: DNS rebinding). The delivery then
connects to the very address that was checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


class UnsafeCallbackUrl(ValueError):
    """A callback URL this service refuses to call; the message says why."""


@dataclass(frozen=True)
class AllowList:
    """Destinations allowed although not public (``callback_allow_private_networks``)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(networks=tuple(networks), hosts=frozenset(hosts))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host in self.hosts or any(address in net for net in self.networks)


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    parts: SplitResult
    host: str
    """The host name, lower-case, without brackets or a trailing dot."""
    port: int
    addresses: tuple[IPAddress, ...]
    """Every address the host resolved to, all of them allowed; deliveries connect to the first."""


def check_syntax(url: str) -> tuple[SplitResult, str, int]:
    """Refuse what is wrong without a DNS look-up: scheme, host, credentials, length."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeCallbackUrl(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeCallbackUrl(f"callback_url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeCallbackUrl("callback_url must be an http:// or https:// URL")
    if not parts.hostname:
        raise UnsafeCallbackUrl("callback_url has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeCallbackUrl("callback_url must not contain credentials (user:password@); the body is signed")
    if parts.fragment:
        raise UnsafeCallbackUrl("callback_url must not contain a #fragment")
    host = parts.hostname.lower().rstrip(".")
    return parts, host, port if port is not None else (443 if parts.scheme == "https" else 80)


def _refusal(address: IPAddress) -> str | None:
    """Why this address is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not publicly routable"
    return None


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address ``host`` resolves to (an IP literal resolves to itself). Blocking: call it in a thread."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeCallbackUrl(f"callback_url host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeCallbackUrl(f"callback_url host {host!r} does not resolve")
    return tuple(addresses)


def check_url(url: str, allow: AllowList) -> CheckedUrl:
    """Resolve the URL's host and refuse it when any address is not public and not allow-listed. Blocking."""
    parts, host, port = check_syntax(url)
    addresses = resolve(host, port)
    for address in addresses:
        reason = _refusal(address)
        if reason is not None and not allow.allows(host, address):
            shown = host if host == str(address) else f"{host} ({address})"
            raise UnsafeCallbackUrl(
                f"callback_url points to a {reason} address: {shown}. Callbacks go to public addresses only; "
                "an operator can allow internal receivers with REPORTSCORE_CALLBACK_ALLOW_PRIVATE_NETWORKS"
            )
    return CheckedUrl(url=url, parts=parts, host=host, port=port, addresses=addresses)
