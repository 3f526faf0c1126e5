"""Where the service may send a request: URL parsing, address policy, resolution with a deadline.

Clinic-controlled URLs (the webhook) are parsed once into a `Target`; the sender connects to
an address this module resolved and checked, never to a name resolved again somewhere else.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import idna

if TYPE_CHECKING:
    from service.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Why a destination is refused: the words staff see on a delivery, and the 422's reason.
Refusal = Literal["malformed_url", "insecure_url", "refused_address", "unresolvable", "timeout"]

MAX_URL_LENGTH = 2000
MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A last label that WHATWG URL parsers and inet_aton read as a number: the host is an IPv4
# address in some spelling (2130706433, 0x7f000001, 127.1, 0177.0.0.1).
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 / 8215).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

REASONS: dict[str, str] = {
    "malformed_url": "Not a well-formed URL with a host name or address.",
    "insecure_url": "Must be an https:// URL (plain http is accepted in development only).",
    "refused_address": (
        "The host is or resolves to a loopback, private, link-local, multicast, reserved or"
        " unspecified address; ask the operator to allow it (CD20_WEBHOOK_ALLOWED_HOSTS)."
    ),
    "unresolvable": "The host name does not resolve.",
    "timeout": "The host name did not resolve in time.",
}

_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


class DestinationRefused(Exception):
    """A URL or address the service will not send to; `code` is one of `Refusal`."""

    def __init__(self, code: Refusal, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code: Refusal = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return REASONS[self.code]


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations are acceptable.

    `allow_http` only in development. `allowed_networks` and `allowed_names` let an operator
    permit an internal endpoint that the address rules would refuse.
    """

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls.from_entries(
            settings.webhook_allowed_hosts, allow_http=settings.environment == "development"
        )

    @classmethod
    def from_entries(cls, entries: Iterable[str], *, allow_http: bool) -> OutboundPolicy:
        networks, names = split_allow_list(entries)
        return cls(allow_http=allow_http, allowed_networks=networks, allowed_names=names)

    def permits(self, address: IPAddress, host: str) -> bool:
        if address.is_unspecified or address.is_multicast:
            return False
        if any(address in network for network in self.allowed_networks):
            return True
        if host in self.allowed_names:
            return True
        return is_public(address)


@dataclass(frozen=True)
class Target:
    """A parsed http(s) URL: where to connect, and what to ask for."""

    scheme: str
    host: str  # lower-case ASCII (IDNA), IPv6 without brackets
    port: int
    path: str  # path and query, at least "/"
    literal: IPAddress | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


def split_allow_list(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """Entries are IP addresses or networks (CIDR), or host names; raises ValueError on others."""
    networks: list[IPNetwork] = []
    names: set[str] = set()
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        try:
            names.add(_host_name(entry))
        except DestinationRefused as exc:
            raise ValueError(f"not an IP address, network or host name: {raw!r}") from exc
    return tuple(networks), frozenset(names)


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast, including any IPv4 address embedded in an IPv6 one."""
    if not address.is_global or address.is_multicast or address.is_reserved:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if any(address in network for network in _NAT64):
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return all(inner is None or is_public(inner) for inner in embedded)
    return True


def parse_target(url: object, policy: OutboundPolicy) -> Target:
    """Parse and check a URL's form and scheme; the host's addresses are checked by `resolve`.

    An IP literal is checked here already; so are the numeric spellings of IPv4 addresses,
    which are refused unless written as four plain decimal numbers.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise DestinationRefused("malformed_url", "not a string of 1 to 2000 characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
        raise DestinationRefused("malformed_url", "whitespace, control character or backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
        raw_host = parts.hostname
    except ValueError as exc:
        raise DestinationRefused("malformed_url", str(exc)) from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationRefused("malformed_url", "the scheme is not http or https")
    if scheme == "http" and not policy.allow_http:
        raise DestinationRefused("insecure_url")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("malformed_url", "credentials in the URL")
    if not raw_host:
        raise DestinationRefused("malformed_url", "no host")
    if port == 0:
        raise DestinationRefused("malformed_url", "port 0")
    literal: IPAddress | None = None
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            literal = ipaddress.IPv6Address(raw_host)
        except ValueError as exc:
            raise DestinationRefused("malformed_url", "not an IPv6 address") from exc
        host = str(literal)
    else:
        _refuse_numeric_spelling(raw_host, policy)
        host = _host_name(raw_host, allow_ipv4=True)
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            literal = ipaddress.IPv4Address(host)
    target = Target(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        literal=literal,
    )
    if literal is not None and not policy.permits(literal, host):
        raise DestinationRefused("refused_address", str(literal))
    if literal is None and _is_local_name(host) and host not in policy.allowed_names:
        raise DestinationRefused("refused_address", host)
    return target


def _refuse_numeric_spelling(raw: str, policy: OutboundPolicy) -> None:
    """127.1, 0x7f000001, 2130706433: say what they stand for if that address is refused."""
    if not _NUMERIC_LABEL.match(raw.lower().rstrip(".").rsplit(".", 1)[-1]):
        return
    try:
        meant = ipaddress.IPv4Address(socket.inet_aton(raw))
    except (OSError, ValueError):
        return
    if str(meant) != raw and not policy.permits(meant, raw):
        raise DestinationRefused("refused_address", f"{raw} is {meant}")


def _is_local_name(host: str) -> bool:
    """Names that are this machine or its link by definition (RFC 6761, RFC 6762)."""
    return host == "localhost" or host.endswith((".localhost", ".local", ".internal"))


def _host_name(raw: str, *, allow_ipv4: bool = False) -> str:
    host = raw.lower()
    if host.endswith("."):
        host = host[:-1]
    if host.isascii():
        ascii_host = host
    else:
        try:
            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise DestinationRefused("malformed_url", "not a valid host name") from exc
    if not ascii_host or len(ascii_host) > MAX_HOST_LENGTH:
        raise DestinationRefused("malformed_url", "the host name is empty or too long")
    labels = ascii_host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        if not allow_ipv4:
            raise DestinationRefused("malformed_url", "a number where a name belongs")
        try:
            ipaddress.IPv4Address(ascii_host)
        except ValueError as exc:
            raise DestinationRefused(
                "malformed_url", "an IPv4 address must be four decimal numbers"
            ) from exc
        return ascii_host
    for label in labels:
        if not _LABEL.match(label):
            raise DestinationRefused("malformed_url", "a host label is not 1 to 63 letters/digits")
    return ascii_host


def resolve(target: Target, policy: OutboundPolicy, *, timeout_s: float) -> list[IPAddress]:
    """Every address the host resolves to, each one checked; refused if any is not acceptable.

    All of them, not the first: a name that resolves to a public and a private address at once
    is refused, so which one a client would pick cannot matter.
    """
    if target.literal is not None:
        if not policy.permits(target.literal, target.host):
            raise DestinationRefused("refused_address", str(target.literal))
        return [target.literal]
    if _is_local_name(target.host) and target.host not in policy.allowed_names:
        raise DestinationRefused("refused_address", target.host)
    addresses = lookup(target.host, target.port, timeout_s=timeout_s)
    for address in addresses:
        if not policy.permits(address, target.host):
            raise DestinationRefused("refused_address", f"{target.host} -> {address}")
    return addresses


def lookup(host: str, port: int, *, timeout_s: float) -> list[IPAddress]:
    """getaddrinfo with a deadline (it has none of its own): the caller never waits longer."""
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(timeout_s, 0.001))
    except FutureTimeout as exc:
        raise DestinationRefused("timeout", host) from exc
    except (OSError, UnicodeError) as exc:
        raise DestinationRefused("unresolvable", host) from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DestinationRefused("unresolvable", host)
    return addresses
