"""Image URLs that arrive through the API cannot make the server connect to itself or its network.

Over real HTTP on 127.0.0.1: a keyed client names loopback URLs in many spellings, a closed port,
and a redirect to an address outside the allow-list; the server refuses them all with one message,
connects to none of them (the local servers count no request) and writes nothing. The guard's own
parts (address rules, one DNS answer per connection) are checked directly, and the CLI path (no
policy) still fetches from 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.bots.test_api import KEYS, WRITE, run_api
from tests.conftest import copy_collection, free_port
from tests.fakes.http_server import Reply, scripted_server
from visearch.core.config import Settings
from visearch.core.errors import ConfigError
from visearch.core.fetch import FetchError, ImageFetcher
from visearch.core.netguard import REFUSED_MESSAGE, AddressPolicy, GuardedTransport, is_public, parse_networks

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
BANANA = (SAMPLE / "images" / "banana.jpg").read_bytes()
LOOPBACK_ONLY = "127.0.0.1/32"
#: a self-signed certificate (and its key) for images.shop.test only, valid until 2126; test use only
TLS_PEM = Path(__file__).resolve().parents[1] / "fakes" / "tls" / "images.shop.test.pem"


@pytest.fixture(scope="module")
def ssrf_catalog(tmp_path_factory: pytest.TempPathFactory, sample_collection: Settings) -> Settings:
    """A writable copy of the sample collection, with one attempt per image (refusals are never retried)."""
    settings = copy_collection(sample_collection, tmp_path_factory.mktemp("ssrf-data"))
    return settings.model_copy(update={"fetch_retries": 0, "fetch_timeout": 3.0})


def refusal(message: str, product_id: str, url: str) -> str:
    """The API's message with the caller's own id and URL taken out: what is left must not depend on the target."""
    return message.replace(url, "<url>").replace(product_id, "<id>")


# --- over HTTP ---------------------------------------------------------------------------------------


async def test_local_addresses_in_any_spelling_are_refused_alike_and_nothing_is_fetched(
    ssrf_catalog: Settings, offline_encoder
) -> None:
    closed = free_port()
    with scripted_server() as inside:
        inside.route("/metrics", Reply(200, BANANA))  # an open port that would even answer with an image
        port = int(inside.base.rsplit(":", 1)[1])
        async with run_api(ssrf_catalog, offline_encoder, api_keys=KEYS, api_fetch_allow="") as api:
            urls = [
                f"http://127.0.0.1:{port}/metrics",
                f"http://127.0.0.1:{closed}/metrics",
                f"http://2130706433:{port}/metrics",
                f"http://0x7f000001:{port}/metrics",
                f"http://[::1]:{port}/metrics",
                f"http://localhost:{port}/metrics",
                f"http://0.0.0.0:{port}/metrics",
                f"http://[::ffff:127.0.0.1]:{port}/metrics",
                f"http://127.1:{port}/metrics",
                f"{api.url}/metrics",
                f"http://169.254.169.254:{closed}/latest",
            ]
            messages = set()
            for n, url in enumerate(urls):
                response = await api.http.post(
                    "/api/v1/products", headers=WRITE, json={"id": f"ssrf-{n}", "title": "Probe", "images": [url]}
                )
                assert response.status_code == 422, (url, response.text)
                assert REFUSED_MESSAGE in response.json()["error"], (url, response.text)
                messages.add(refusal(response.json()["error"], f"ssrf-{n}", url))
                assert (await api.product(f"ssrf-{n}")).status_code == 404, url
            assert len(messages) == 1, messages  # open port, closed port, the API itself: the same words

            batch = {
                "products": [{"id": f"ssrf-b{n}", "title": "Probe", "images": [url]} for n, url in enumerate(urls[:4])]
            }
            answer = await api.http.post("/api/v1/products:batch", headers=WRITE, json=batch)
            assert answer.status_code == 200 and answer.json()["written"] == 0, answer.text
            items = answer.json()["items"]
            assert all(REFUSED_MESSAGE in item["error"] for item in items), items
            refusals = {
                refusal(item["error"], f"ssrf-b{n}", url)
                for n, (item, url) in enumerate(zip(items, urls[:4], strict=True))
            }
            assert len(refusals) == 1, refusals
            for n in range(4):
                assert (await api.product(f"ssrf-b{n}")).status_code == 404
        assert inside.hits == {}  # not one request reached the local server


async def test_refused_url_leaves_an_existing_product_as_it_was(ssrf_catalog: Settings, offline_encoder) -> None:
    with scripted_server() as inside:
        inside.route("/other.jpg", Reply(200, (SAMPLE / "images" / "lemon.jpg").read_bytes()))
        async with run_api(ssrf_catalog, offline_encoder, api_fetch_allow="") as api:
            product = {"id": "ssrf-kept", "title": "Kept banana", "category": "Kept"}
            made = await api.http.post(
                "/api/v1/products",
                headers=WRITE,
                data={"product": json.dumps(product)},
                files=[("images", ("banana.jpg", BANANA, "image/jpeg"))],
            )
            assert made.status_code == 200 and made.json()["indexed"] == 1, made.text
            before = (await api.product("ssrf-kept")).json()
            attack = {**product, "title": "Replaced", "images": [inside.url("/other.jpg")]}
            response = await api.http.post("/api/v1/products", headers=WRITE, json=attack)
            assert response.status_code == 422 and REFUSED_MESSAGE in response.json()["error"], response.text
            assert (await api.product("ssrf-kept")).json() == before
            assert (await api.http.delete("/api/v1/products/ssrf-kept", headers=WRITE)).status_code == 200
        assert inside.hits == {}


async def test_allow_list_admits_its_range_but_not_a_redirect_out_of_it(
    ssrf_catalog: Settings, offline_encoder
) -> None:
    with scripted_server() as allowed, scripted_server() as target:
        target.route("/secret.jpg", Reply(200, BANANA))
        hop = f"http://0.0.0.0:{target.base.rsplit(':', 1)[1]}/secret.jpg"  # Linux connects 0.0.0.0 to this host
        allowed.route("/jump.jpg", Reply(302, b"", content_type=None, headers={"Location": hop}))
        allowed.route("/banana.jpg", Reply(200, BANANA))
        async with run_api(ssrf_catalog, offline_encoder, api_fetch_allow=LOOPBACK_ONLY) as api:
            ok = await api.http.post(
                "/api/v1/products",
                headers=WRITE,
                json={"id": "ssrf-allowed", "title": "Intranet banana", "images": [allowed.url("/banana.jpg")]},
            )
            assert ok.status_code == 200 and ok.json()["indexed"] == 1, ok.text
            jump = await api.http.post(
                "/api/v1/products",
                headers=WRITE,
                json={"id": "ssrf-jump", "title": "Redirected", "images": [allowed.url("/jump.jpg")]},
            )
            assert jump.status_code == 422 and REFUSED_MESSAGE in jump.json()["error"], jump.text
            assert (await api.product("ssrf-jump")).status_code == 404
            assert (await api.http.delete("/api/v1/products/ssrf-allowed", headers=WRITE)).status_code == 200
        assert allowed.hits == {"/banana.jpg": 1, "/jump.jpg": 1}
        assert target.hits == {}


def test_allow_list_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from visearch.bots.server.config import load_server_settings

    monkeypatch.setenv("VISEARCH_API_FETCH_ALLOW", "10.0.0.0/8, 192.168.1.7,fd00::/8")
    assert load_server_settings().api_fetch_policy.allow == parse_networks("10.0.0.0/8,192.168.1.7/32,fd00::/8")
    monkeypatch.setenv("VISEARCH_API_FETCH_ALLOW", "10.0.0.0/8,intranet")
    with pytest.raises(ConfigError, match=r"VISEARCH_API_FETCH_ALLOW.*'intranet' is not an IP address or CIDR range"):
        load_server_settings()


# --- the guard itself --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "198.18.0.1",
        "192.0.2.1",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001:db8::1",
    ],
)
def test_local_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    assert not AddressPolicy().permits(address)


def test_public_addresses_pass_and_an_allow_list_adds_its_ranges_only() -> None:
    for address in ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert AddressPolicy().permits(address), address
    intranet = AddressPolicy(parse_networks("10.20.0.0/16,127.0.0.1"))
    assert intranet.permits("10.20.3.4") and intranet.permits("::ffff:10.20.3.4") and intranet.permits("127.0.0.1")
    assert not intranet.permits("10.21.0.1") and not intranet.permits("127.0.0.2") and not intranet.permits("::1")
    assert not intranet.permits("not an address")


@pytest.fixture
async def host_echo() -> AsyncIterator[tuple[int, list[str]]]:
    """An image server on 127.0.0.1 that records the Host header of each request."""
    hosts: list[str] = []

    async def image(request: web.Request) -> web.Response:
        hosts.append(request.headers.get("Host", ""))
        return web.Response(body=BANANA, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{name}", image)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1], hosts  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected(
    ssrf_catalog: Settings, host_echo: tuple[int, list[str]]
) -> None:
    port, hosts = host_echo
    asked: list[str] = []

    async def rebinding(host: str, _port: int) -> list[str]:
        """First answer: the allowed address; every later one: a refused address (DNS rebinding)."""
        asked.append(host)
        return ["127.0.0.1"] if len(asked) == 1 else ["127.0.0.2"]

    policy = AddressPolicy(parse_networks(LOOPBACK_ONLY))
    async with ImageFetcher(ssrf_catalog, transport=GuardedTransport(policy, resolver=rebinding)) as fetcher:
        assert await fetcher.fetch(f"http://images.shop.test:{port}/a.jpg", Path(".")) == BANANA
    assert asked == ["images.shop.test"]  # one lookup; its (checked) answer is where the socket went
    assert hosts == [f"images.shop.test:{port}"]  # the Host header still names the host

    async def mixed(host: str, _port: int) -> list[str]:
        return ["127.0.0.1", "169.254.169.254"]  # one refused address refuses the name

    async with ImageFetcher(ssrf_catalog, transport=GuardedTransport(policy, resolver=mixed)) as fetcher:
        with pytest.raises(FetchError, match=REFUSED_MESSAGE.replace("(", r"\(").replace(")", r"\)")):
            await fetcher.fetch(f"http://images.shop.test:{port}/b.jpg", Path("."))
    assert len(hosts) == 1


async def test_tls_still_verifies_the_host_name_while_the_socket_goes_to_the_checked_ip(
    ssrf_catalog: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS_PEM))  # the operator's CA bundle: trusts this certificate
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS_PEM)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=BANANA, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{name}", image)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def to_loopback(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    policy = AddressPolicy(parse_networks(LOOPBACK_ONLY))
    try:
        async with ImageFetcher(ssrf_catalog, transport=GuardedTransport(policy, resolver=to_loopback)) as fetcher:
            assert await fetcher.fetch(f"https://images.shop.test:{port}/a.jpg", Path(".")) == BANANA
            with pytest.raises(FetchError):  # the certificate names the host, not the address
                await fetcher.fetch(f"https://127.0.0.1:{port}/a.jpg", Path("."))
    finally:
        await runner.cleanup()
    assert names[0] == "images.shop.test"  # SNI: the name, though the socket went to 127.0.0.1


async def test_the_cli_path_without_a_policy_still_fetches_from_loopback(ssrf_catalog: Settings) -> None:
    with scripted_server() as local:
        url = local.route("/a.jpg", Reply(200, BANANA))
        async with ImageFetcher(ssrf_catalog) as fetcher:
            assert await fetcher.fetch(url, Path(".")) == BANANA
        async with ImageFetcher(ssrf_catalog, address_policy=AddressPolicy()) as fetcher:
            with pytest.raises(FetchError):
                await fetcher.fetch(url, Path("."))
        assert local.hits == {"/a.jpg": 1}
