"""Where image downloads asked for by API callers may connect: public internet addresses only.

Why: an API key holder names image URLs and the server fetches them, so without a guard a URL
could reach the server's own /metrics, a cloud metadata endpoint (169.254.169.254) or any
intranet host, and the fetch's error would tell an open port from a closed one. The guard sits
where the connection is made (an httpcore network backend), so every redirect hop is checked,
and it connects to the very address it checked: the name is resolved once, every address it
resolves to must be allowed, then the socket goes to that IP (a second DNS answer - rebinding -
is never asked for). TLS SNI, certificate checks and the Host header still use the host name,
because httpcore takes those from the URL, not from the socket.

Allowed: globally routable unicast addresses, plus the ranges an operator lists explicitly
(`VISEARCH_API_FETCH_ALLOW`). The admin CLI and URLs the operator configures do not use this.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio
import httpcore
import httpx

from visearch.core.errors import VisearchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: host, port -> the addresses the name resolves to (IP strings)
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: the one answer for every refused host: it says nothing about what listens there
REFUSED_MESSAGE = "image host not allowed (not a public internet address)"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedAddressError(VisearchError):
    """The URL's host is (or resolves to) an address the policy refuses; nothing was connected."""

    def __init__(self) -> None:
        super().__init__(REFUSED_MESSAGE)


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """'10.0.0.0/8, 192.168.1.7' -> networks (a bare address is a /32 or /128); ValueError names the bad item."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address or CIDR range (write e.g. 10.0.0.0/8,192.168.1.20, comma-separated)"
            ) from None
    return tuple(networks)


def _unwrap(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses that 6to4, Teredo and NAT64 (64:ff9b::/96) addresses lead to."""
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address (and nothing it embeds is local)."""
    address = _unwrap(address)
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return all(is_public(inner) for inner in _embedded_ipv4(address))
    return True


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, plus the operator's `allow` ranges."""

    allow: tuple[IPNetwork, ...] = ()

    def permits(self, address: str | IPAddress) -> bool:
        """Whether a connection to this IP address may be made."""
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return False
        ip = _unwrap(ip)
        if any(ip.version == net.version and ip in net for net in self.allow):
            return True
        return is_public(ip)


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (IP literals, even 2130706433, come back as IPs)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend: resolve once, check every address, connect to a checked IP."""

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        if not addresses or not all(self.policy.permits(a) for a in addresses):
            raise RefusedAddressError()  # one refused address refuses the name: no mixed answers
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:  # try the next address, as a resolver-driven connect would
                last = exc
        assert last is not None
        raise last

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            with anyio.fail_after(timeout):
                return [a.split("%", 1)[0] for a in await self.resolver(host.strip("[]"), port)]
        except TimeoutError:
            raise httpcore.ConnectTimeout("name resolution timed out") from None
        except (OSError, UnicodeError) as exc:  # gaierror: unknown name
            raise httpcore.ConnectError(f"name resolution failed ({type(exc).__name__})") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddressError()

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (exception mapping, streaming) over a pool that uses `GuardedBackend`.

    No proxy (HTTP(S)_PROXY would connect for us, past the guard); an operator's CA bundle
    (SSL_CERT_FILE / SSL_CERT_DIR) still applies, for intranet hosts on a private CA.
    """

    def __init__(
        self, policy: AddressPolicy, limits: httpx.Limits = httpx.Limits(), resolver: Resolver = system_resolver
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver),
        )
