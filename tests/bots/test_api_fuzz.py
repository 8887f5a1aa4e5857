"""Schemathesis over /api/v1/openapi.json: generated requests (valid and invalid, keyed) against
the real server on 127.0.0.1 never get a 5xx, and 2xx answers match the documented schema.

Bounded: a fixed number of examples per operation, derandomized. Every image URL a generated
product names is pointed at a scripted image server on 127.0.0.1, which the server's download
guard admits (VISEARCH_API_FETCH_ALLOW=127.0.0.1/32) while it refuses every other non-public
address; anything else in the process that downloads goes through a refusing proxy on
127.0.0.1 (HTTP(S)_PROXY; the API's guarded downloads ignore proxies), so nothing leaves the machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import copy_collection
from tests.fakes.http_server import Reply, scripted_server
from tests.serving import app_in_thread
from visearch.core.config import Settings

SAMPLE = Path(__file__).resolve().parents[2] / "indexer" / "demo_data" / "grocery"
KEY = "fuzz-key-123"
EXAMPLES = 40
KEPT = {"granny-smith", "banana"}


@dataclass
class FuzzServer:
    url: str
    image_url: str


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory,
    sample_collection: Settings,
    offline_encoder,
) -> Iterator[FuzzServer]:
    settings = copy_collection(sample_collection, tmp_path_factory.mktemp("fuzz-data"))
    settings = settings.model_copy(update={"fetch_retries": 0, "fetch_timeout": 2.0})
    with scripted_server() as images, scripted_server() as proxy, pytest.MonkeyPatch.context() as env:
        proxy.route("/", Reply(403, b"no external traffic in tests", content_type="text/plain"))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env.setenv(name, proxy.base)
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        env.setenv("no_proxy", "127.0.0.1,localhost")
        image_url = images.route("/photo.jpg", Reply(200, (SAMPLE / "images" / "banana.jpg").read_bytes()))
        with app_in_thread(
            settings, offline_encoder, api_keys=KEY, api_max_batch=5, api_fetch_allow="127.0.0.1/32"
        ) as url:
            yield FuzzServer(url, image_url)


def local_images(value: Any, image_url: str) -> Any:
    """The generated body with every product image URL replaced by the local one."""
    if isinstance(value, dict):
        out = {k: local_images(v, image_url) for k, v in value.items()}
        if isinstance(out.get("images"), list):
            out["images"] = [image_url if isinstance(i, str) else i for i in out["images"]][:3]
        return out
    if isinstance(value, list):
        return [local_images(v, image_url) for v in value]
    return value


def test_no_server_errors(fuzz_server: FuzzServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    statuses: Counter[tuple[str, int]] = Counter()
    for operation in operations:
        check_operation(operation, fuzz_server, statuses)
    print(sorted(statuses.items()))
    for operation in operations:  # every operation was really called, and answered
        assert sum(n for (label, _), n in statuses.items() if label == operation.label) >= 1, operation.label
    assert statuses[("POST /api/v1/products", 200)] or statuses[("POST /api/v1/products:batch", 200)]


def check_operation(operation: Any, server: FuzzServer, statuses: Counter[tuple[str, int]]) -> None:
    """EXAMPLES generated requests to one operation: no 5xx, and 2xx bodies as documented."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def run(case: Any) -> None:
        if case.method.upper() == "DELETE" and (case.path_parameters or {}).get("product_id") in KEPT:
            return  # keep the products other examples search for
        case.body = local_images(case.body, server.image_url)
        response = case.call_and_validate(
            base_url=server.url,
            headers={"Authorization": f"Bearer {KEY}"},
            checks=[not_a_server_error, response_schema_conformance],
        )
        statuses[(operation.label, response.status_code)] += 1

    run()
