"""The deployment files a shop runs (deploy/, .dockerignore) and the sharding settings they rely on.

No Docker engine runs here, so the compose files and the Dockerfile are checked for what a user
relies on (services, wiring, health checks, the torch pin, a non-root user, the command) by
parsing them. The sharding settings are checked end to end: qdrant-client, configured from
`VISEARCH_*` settings, creates a collection on a fake Qdrant REST server on 127.0.0.1, and the
request body it sends is inspected.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import yaml

from visearch.core.config import Settings, load_settings
from visearch.core.errors import ConfigError
from visearch.core.store.factory import open_store
from visearch.core.store.server import _INDEX_TYPES, META_KEY, ServerStore

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE_FILES = sorted(DEPLOY.glob("*.yml"))
SERVE_CMD = ["visearch", "serve", "--host", "0.0.0.0", "--port", "8080"]

# qdrant-client warns (rightly, for operators) when an API key travels over plain http
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")


def compose(name: str) -> dict[str, Any]:
    """A compose file as Compose's YAML parser sees it (anchors and merge keys resolved)."""
    data = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), f"{name} has no services"
    return data


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, whether written as a mapping or as a list of KEY=VALUE."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def argv(command: str | list[str]) -> list[str]:
    """A service's `command` as an argument list, whichever form the file uses."""
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def depends_healthy(service: dict[str, Any]) -> set[str]:
    """The services this one waits for until they are healthy (not merely started)."""
    deps = service.get("depends_on") or {}
    assert isinstance(deps, dict), "depends_on must use the long form to wait for health"
    return {name for name, cond in deps.items() if (cond or {}).get("condition") == "service_healthy"}


def qdrant_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in data["services"].items() if str(svc.get("image", "")).startswith("qdrant/qdrant:")
    }


def example_env() -> dict[str, str]:
    """deploy/.env.example as KEY -> value (comments and blank lines skipped)."""
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# --- compose files ---------------------------------------------------------------------------------


def test_every_compose_file_parses() -> None:
    assert {p.name for p in COMPOSE_FILES} >= {"docker-compose.yml", "docker-compose.cluster.yml"}
    for path in COMPOSE_FILES:
        compose(path.name)


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.cluster.yml"])
def test_visearch_service_is_built_and_wired(name: str) -> None:
    data = compose(name)
    services = data["services"]
    visearch = services["visearch"]
    qdrants = qdrant_services(data)
    assert qdrants, "no Qdrant service"

    # built from the repository root with deploy/Dockerfile, settings from deploy/.env
    build = visearch["build"]
    assert build["context"] == ".." and build["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    assert visearch["env_file"] in (".env", [".env"])

    # talks to a Qdrant service of this file, on its REST port, and waits until it is healthy
    url = urlsplit(env_of(visearch)["VISEARCH_QDRANT_URL"])
    assert url.scheme == "http" and url.hostname in qdrants and url.port == 6333
    assert depends_healthy(visearch) == set(qdrants), "visearch must wait for every Qdrant node to be healthy"

    # serves on 8080, is checked on /readyz; the catalog is mounted read-only at /catalog
    assert "8080:8080" in [str(p) for p in visearch["ports"]]
    assert "/readyz" in healthcheck_text(visearch) and "8080" in healthcheck_text(visearch)
    assert any(str(v).endswith(":/catalog:ro") for v in visearch["volumes"])
    assert any(str(v).split(":")[1] == "/data" for v in visearch["volumes"])

    for qname, qdrant in qdrants.items():
        assert re.fullmatch(r"qdrant/qdrant:v1\.\d+\.\d+", qdrant["image"]), f"{qname}: pin a v1.x.y tag"
        assert "/readyz" in healthcheck_text(qdrant), f"{qname} has no readiness health check"
        assert any(str(v).endswith(":/qdrant/storage") for v in qdrant["volumes"]), f"{qname} keeps no data"
        # the API key comes from deploy/.env, the same value visearch sends
        assert "VISEARCH_QDRANT_API_KEY" in env_of(qdrant)["QDRANT__SERVICE__API_KEY"]
        # Qdrant is published on the host's loopback at most, never to the network; 6335 never
        for port in qdrant.get("ports", []):
            assert str(port).startswith("127.0.0.1:") and "6335" not in str(port)

    # the named volumes the services use are declared
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in (data.get("volumes") or {}), f"volume {source} is not declared"


def test_single_server_file() -> None:
    data = compose("docker-compose.yml")
    assert set(data["services"]) == {"qdrant", "visearch"}
    assert env_of(data["services"]["visearch"])["VISEARCH_QDRANT_URL"] == "http://qdrant:6333"


def test_cluster_file_has_three_clustered_nodes_and_sharding() -> None:
    data = compose("docker-compose.cluster.yml")
    nodes = qdrant_services(data)
    assert sorted(nodes) == ["qdrant-1", "qdrant-2", "qdrant-3"]
    for name, node in nodes.items():
        env = env_of(node)
        assert env["QDRANT__CLUSTER__ENABLED"] == "true", name
        assert env.get("QDRANT__CLUSTER__P2P__PORT", "6335") == "6335", name
    first = argv(nodes["qdrant-1"]["command"])
    assert "--bootstrap" not in first
    assert first[first.index("--uri") + 1] == "http://qdrant-1:6335"
    for name in ("qdrant-2", "qdrant-3"):
        args = argv(nodes[name]["command"])
        assert args[args.index("--bootstrap") + 1] == "http://qdrant-1:6335", name
        if "--uri" in args:
            assert args[args.index("--uri") + 1] == f"http://{name}:6335", name
        assert "qdrant-1" in depends_healthy(nodes[name]), f"{name} must join only once qdrant-1 is up"

    env = env_of(data["services"]["visearch"])
    assert env["VISEARCH_QDRANT_URL"] == "http://qdrant-1:6333"
    shards, replicas = int(env["VISEARCH_QDRANT_SHARD_NUMBER"]), int(env["VISEARCH_QDRANT_REPLICATION_FACTOR"])
    assert (shards, replicas) == (6, 2)
    assert shards >= len(nodes) and 2 <= replicas <= len(nodes)  # every node holds shards; one may be lost


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.cluster.yml"])
def test_compose_environment_is_valid_visearch_settings(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the compose file sets passes visearch's own validation (no typo, no bad value)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    env = env_of(compose(name)["services"]["visearch"])
    fields = set(Settings.model_fields)
    for key, value in env.items():
        assert key.startswith("VISEARCH_") and key[len("VISEARCH_") :].lower() in fields, f"unknown setting {key}"
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.qdrant_url == env["VISEARCH_QDRANT_URL"]
    if "VISEARCH_QDRANT_SHARD_NUMBER" in env:
        assert settings.qdrant_shard_number == int(env["VISEARCH_QDRANT_SHARD_NUMBER"])
        assert settings.qdrant_replication_factor == int(env["VISEARCH_QDRANT_REPLICATION_FACTOR"])


def test_env_example_lists_known_settings_with_placeholders_only() -> None:
    from visearch.bots.server.config import ServerSettings
    from visearch.bots.telegram.config import TelegramSettings

    known = {f"VISEARCH_{f.upper()}" for f in Settings.model_fields}
    known |= {f"VISEARCH_{f.upper()}" for f in ServerSettings.model_fields}
    known |= {f"VISEARCH_TELEGRAM_{f.upper()}" for f in TelegramSettings.model_fields}
    example = example_env()
    text = (DEPLOY / ".env.example").read_text(encoding="utf-8")

    for key in example:
        if key.startswith("VISEARCH_"):
            assert key in known, f"{key} in .env.example is not a visearch setting"
    for key in (
        "VISEARCH_ENCODER",
        "VISEARCH_CLIP_MODEL",
        "VISEARCH_COLLECTION",
        "VISEARCH_QDRANT_API_KEY",
        "VISEARCH_TELEGRAM_TOKEN",
        "VISEARCH_TELEGRAM_WEBHOOK_SECRET",
        "VISEARCH_VIBER_TOKEN",
        "VISEARCH_WHATSAPP_TOKEN",
        "VISEARCH_WHATSAPP_APP_SECRET",
        "VISEARCH_WHATSAPP_VERIFY_TOKEN",
        "VISEARCH_WHATSAPP_PHONE_NUMBER_ID",
    ):
        assert key in example, f"{key} missing from .env.example"
    assert "VISEARCH_QDRANT_URL" in text and "VISEARCH_QDRANT_SHARD_NUMBER" in text

    # placeholders only: secrets empty or an obvious "change-me"; nothing shaped like a real token
    for key in (
        "TELEGRAM_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "VIBER_TOKEN",
        "WHATSAPP_TOKEN",
        "WHATSAPP_APP_SECRET",
        "WHATSAPP_VERIFY_TOKEN",
        "API_KEYS",
    ):
        assert example[f"VISEARCH_{key}"] == "", f"VISEARCH_{key} must be empty in the example"
    assert example["VISEARCH_QDRANT_API_KEY"].startswith("change-me")
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", text), "looks like a real Telegram token"

    # every ${VAR} a compose file interpolates is explained in the example
    for path in COMPOSE_FILES:
        if path.name == "docker-compose.qdrant.yml":
            continue  # the older standalone file, used with exported variables
        for var in re.findall(r"\$\{([A-Z0-9_]+)", path.read_text(encoding="utf-8")):
            assert var in example, f"{path.name} uses ${{{var}}}, not in .env.example"


# --- Dockerfile and .dockerignore ------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, comments dropped and line continuations joined."""
    joined = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    steps = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            steps.append((instruction.upper(), args.strip()))
    return steps


def test_dockerfile_installs_cpu_torch_first_then_the_repo() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = [args for inst, args in steps if inst == "RUN"]
    torch_at = next(i for i, r in enumerate(runs) if "torch" in r)
    repo_at = next(i for i, r in enumerate(runs) if re.search(r"pip install (\S+ )*\.(\s|$)", r))
    assert torch_at < repo_at, "torch must come from the CPU index before `pip install .` resolves it"
    torch_cmd = shlex.split(runs[torch_at])
    assert "torch==2.13.0" in torch_cmd
    assert torch_cmd[torch_cmd.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert "torchvision" not in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").lower()
    assert ("COPY", ". .") in steps  # the build context is the repository root


def test_dockerfile_runs_visearch_serve_as_non_root() -> None:
    steps = dockerfile()
    users = [(i, args) for i, (inst, args) in enumerate(steps) if inst == "USER"]
    assert users, "no USER: the container would run as root"
    last_user_at, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert all(inst != "RUN" for inst, _ in steps[last_user_at:]), "a RUN after USER would need root again"

    cmd = [args for inst, args in steps if inst == "CMD"]
    assert len(cmd) == 1 and json.loads(cmd[0]) == SERVE_CMD
    assert not any(inst == "ENTRYPOINT" for inst, _ in steps)
    assert ("EXPOSE", "8080") in steps
    env = " ".join(args for inst, args in steps if inst == "ENV")
    assert "VISEARCH_DATA_DIR=/data" in env

    health = [args for inst, args in steps if inst == "HEALTHCHECK"]
    assert len(health) == 1
    assert "urllib" in health[0] and "http://127.0.0.1:8080/healthz" in health[0]
    probe = json.loads(health[0][health[0].index("CMD") + 3 :].strip())
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "<healthcheck>", "exec")  # the probe is valid Python


def test_serve_command_takes_the_flags_the_image_passes() -> None:
    """The image's CMD and the compose health checks rely on `visearch serve --host --port`."""
    import typer.main

    from visearch.indexer.cli import app

    command = typer.main.get_command(app)
    serve = command.commands["serve"]  # type: ignore[attr-defined]
    options = {opt for param in serve.params for opt in param.opts}
    assert {"--host", "--port"} <= options
    assert next(p for p in serve.params if "--port" in p.opts).default == 8080


def test_dockerignore_keeps_state_and_secrets_out_of_the_image() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", "visearch-data", ".git", "**/__pycache__", ".env", "**/.env", ".benchmarks"):
        assert required in patterns, f".dockerignore misses {required}"


# --- sharding settings reach Qdrant ----------------------------------------------------------------


@dataclass
class FakeQdrant:
    """The slice of Qdrant's REST API that creating and describing a collection uses, recording requests."""

    base: str = ""
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, method: str, path: str) -> list[Any]:
        return [body for m, p, _, body in self.requests if m == method and urlsplit(p).path == path]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(path).path.strip("/").split("/")
        if parts[0] != "collections" or len(parts) < 2:
            return 404, {"status": {"error": f"Not found: {path}"}, "time": 0}
        name, rest = parts[1], parts[2:]
        with self.lock:
            config = self.collections.get(name)
            if method == "GET" and rest == ["exists"]:
                return 200, {"result": {"exists": config is not None}, "status": "ok", "time": 0}
            if method == "PUT" and not rest:
                if config is not None:
                    return 409, {"status": {"error": f"Wrong input: Collection `{name}` already exists!"}, "time": 0}
                self.collections[name] = {"create": body, "indexes": {}}
                return 200, {"result": True, "status": "ok", "time": 0}
            if config is None:
                return 404, {"status": {"error": f"Not found: Collection `{name}` doesn't exist!"}, "time": 0}
            if method == "GET" and not rest:
                return 200, {"result": self._describe(config), "status": "ok", "time": 0}
            if method == "PUT" and rest == ["index"]:
                config["indexes"][body["field_name"]] = body["field_schema"]
                return 200, {"result": {"operation_id": 1, "status": "completed"}, "status": "ok", "time": 0}
            if method == "POST" and rest == ["points", "count"]:
                return 200, {"result": {"count": 0}, "status": "ok", "time": 0}
        return 404, {"status": {"error": f"Not found: {method} {path}"}, "time": 0}

    @staticmethod
    def _describe(config: dict[str, Any]) -> dict[str, Any]:
        """GET /collections/{name} the way a Qdrant 1.16+ server shapes it, echoing what was created."""
        create = config["create"]
        return {
            "status": "green",
            "optimizer_status": "ok",
            "points_count": 0,
            "indexed_vectors_count": 0,
            "segments_count": 2,
            "config": {
                "params": {
                    "vectors": create["vectors"],
                    "shard_number": create.get("shard_number", 1),
                    "replication_factor": create.get("replication_factor", 1),
                    "write_consistency_factor": create.get("write_consistency_factor", 1),
                    "on_disk_payload": True,
                },
                "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                "optimizer_config": {"default_segment_number": 0, "flush_interval_sec": 5},
                "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
                "metadata": create.get("metadata"),
            },
            "payload_schema": {name: {"data_type": schema, "points": 0} for name, schema in config["indexes"].items()},
        }


FakeQdrantT = TypeVar("FakeQdrantT", bound=FakeQdrant)


@contextmanager
def serving(fake: FakeQdrantT) -> Iterator[FakeQdrantT]:
    """Serve `fake` on a free port of 127.0.0.1 (its `base` is set) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with fake.lock:
                fake.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, payload = fake.answer(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # http.server dispatches on do_<METHOD>

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    fake.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_qdrant() -> Iterator[FakeQdrant]:
    """A FakeQdrant on a free port of 127.0.0.1, stopped after the test."""
    with serving(FakeQdrant()) as fake:
        yield fake


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VISEARCH_* variable or .env of the machine running the tests leaks into the settings."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("VISEARCH_"):
            monkeypatch.delenv(key)


async def test_sharding_settings_reach_create_collection(
    fake_qdrant: FakeQdrant, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cluster compose file's variables end up in the PUT /collections/{name} body Qdrant receives."""
    monkeypatch.setenv("VISEARCH_QDRANT_URL", fake_qdrant.base)
    monkeypatch.setenv("VISEARCH_QDRANT_API_KEY", "test-key")
    monkeypatch.setenv("VISEARCH_QDRANT_SHARD_NUMBER", "6")
    monkeypatch.setenv("VISEARCH_QDRANT_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("VISEARCH_QDRANT_WRITE_CONSISTENCY_FACTOR", "2")
    store = open_store(load_settings(collection="shop"))
    try:
        info = await store.ensure_collection("test-encoder@v1", 8)
    finally:
        await store.close()

    assert info.name == "shop" and info.dim == 8 and info.points == 0 and info.backend == "server"
    (created,) = fake_qdrant.bodies("PUT", "/collections/shop")
    assert created["shard_number"] == 6
    assert created["replication_factor"] == 2
    assert created["write_consistency_factor"] == 2
    assert created["vectors"] == {"image": {"size": 8, "distance": "Cosine"}}
    assert created["metadata"][META_KEY]["encoder_id"] == "test-encoder@v1"
    # payload indexes for the filters are still created, and every call carried the API key
    indexed = {body["field_name"] for body in fake_qdrant.bodies("PUT", "/collections/shop/index")}
    assert indexed == set(_INDEX_TYPES)
    assert all(headers.get("api-key") == "test-key" for _, _, headers, _ in fake_qdrant.requests)


async def test_unset_sharding_sends_nothing_and_keeps_server_defaults(fake_qdrant: FakeQdrant, clean_env: None) -> None:
    store = open_store(load_settings(qdrant_url=fake_qdrant.base))
    try:
        await store.ensure_collection("test-encoder@v1", 8)
        # an existing collection is verified, never created again: sharding only applies on creation
        again = ServerStore("products", url=fake_qdrant.base, shard_number=3, replication_factor=3)
        try:
            await again.ensure_collection("test-encoder@v1", 8)
        finally:
            await again.close()
    finally:
        await store.close()
    (created,) = fake_qdrant.bodies("PUT", "/collections/products")
    assert not {"shard_number", "replication_factor", "write_consistency_factor"} & set(created)


async def test_sharding_is_harmless_in_local_mode() -> None:
    """qdrant-client's in-memory double (the test suite's server backend) accepts and ignores it."""
    store = ServerStore("products", location=":memory:", shard_number=2, replication_factor=2)
    try:
        info = await store.ensure_collection("test-encoder@v1", 8)
    finally:
        await store.close()
    assert info.dim == 8


def test_sharding_values_are_validated(clean_env: None) -> None:
    for bad in ({"qdrant_shard_number": 0}, {"qdrant_replication_factor": 0}, {"qdrant_write_consistency_factor": 0}):
        with pytest.raises(ConfigError, match=f"VISEARCH_{next(iter(bad)).upper()}"):
            load_settings(**bad)
    with pytest.raises(ConfigError, match="cannot exceed VISEARCH_QDRANT_REPLICATION_FACTOR"):
        load_settings(qdrant_replication_factor=2, qdrant_write_consistency_factor=3)
    defaults = load_settings()
    assert defaults.qdrant_shard_number is None and defaults.qdrant_replication_factor is None
    assert defaults.qdrant_write_consistency_factor is None
    with pytest.raises(ValueError, match="shard_number must be at least 1"):
        ServerStore("products", location=":memory:", shard_number=0)
