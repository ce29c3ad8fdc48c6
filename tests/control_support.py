"""Gateways with virtual keys for the control tests: subprocess replicas and admin calls."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from tests.servers import free_port
from thrifty.pricing.engine import CostEngine
from thrifty.tokens import count_chat_messages
from thrifty.usage import Usage

MASTER_KEY = "sk-master-test-" + uuid.uuid4().hex
PROVIDER_KEY_ENV = "THRIFTY_TEST_PROVIDER_KEY"
THRIFTY = str(Path(sys.executable).with_name("thrifty"))


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(
            method,
            f"{self.url}/thrifty/admin{path}",
            json=body,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=10,
        )
        assert response.status_code < 300, response.text
        return response.json()

    def create_key(self, **fields: Any) -> dict[str, Any]:
        created = self.admin("POST", "/keys", fields)
        assert isinstance(created, dict)
        return created


def gateway_config(
    path: Path, *, sandbox_url: str, db_url: str, spool: Path, control: dict[str, Any]
) -> Path:
    config = {
        "providers": {
            "openai": {"base_url": sandbox_url, "api_key_env": PROVIDER_KEY_ENV},
            "anthropic": {"base_url": sandbox_url, "api_key_env": PROVIDER_KEY_ENV},
        },
        "gateway": {"spool_dir": str(spool)},
        "ledger": {"url": db_url},
        "control": control,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@contextlib.contextmanager
def replicas(
    tmp_path: Path, *, sandbox_url: str, db_url: str, control: dict[str, Any], count: int = 2
) -> Iterator[list[Replica]]:
    """Run ``count`` ``thrifty serve`` processes that share a database and their counters."""
    env = {**os.environ, "THRIFTY_MASTER_KEY": MASTER_KEY, PROVIDER_KEY_ENV: "sk-sandbox"}
    started: list[Replica] = []
    try:
        for index in range(count):
            port = free_port()
            config = gateway_config(
                tmp_path / f"replica{index}.yaml",
                sandbox_url=sandbox_url,
                db_url=db_url,
                spool=tmp_path / f"spool{index}",
                control=control,
            )
            log = tmp_path / f"replica{index}.log"
            process = subprocess.Popen(
                [THRIFTY, "serve", "--port", str(port), "--config", str(config)],
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            started.append(Replica(f"http://127.0.0.1:{port}", process, log))
        for replica in started:
            _wait_healthy(replica)
        yield started
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


@contextlib.contextmanager
def worker_gateway(
    tmp_path: Path, *, sandbox_url: str, db_url: str, control: dict[str, Any], workers: int
) -> Iterator[Replica]:
    """Run one ``thrifty serve --workers N``: N processes on one port, sharing the counters."""
    env = {**os.environ, "THRIFTY_MASTER_KEY": MASTER_KEY, PROVIDER_KEY_ENV: "sk-sandbox"}
    port = free_port()
    config = gateway_config(
        tmp_path / "workers.yaml",
        sandbox_url=sandbox_url,
        db_url=db_url,
        spool=tmp_path / "spool",
        control=control,
    )
    log = tmp_path / "workers.log"
    command = [THRIFTY, "serve", "--port", str(port), "--config", str(config)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    gateway = Replica(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_healthy(gateway)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(replica: Replica) -> None:
    # Generous: start-up imports take seconds, more on a loaded 2-core machine.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise AssertionError(f"replica exited: {replica.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{replica.url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"replica {replica.url} did not start: {replica.log.read_text()[-3000:]}")


def new_redis_prefix() -> str:
    return f"thrifty-test-{uuid.uuid4().hex[:12]}:"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def chat_cost(
    messages: Sequence[Mapping[str, Any]], max_tokens: int, model: str = "gpt-4o-mini"
) -> Decimal:
    """The exact cost of a sandbox chat completion: its prompt count and max_tokens of output."""
    usage = Usage(input_tokens=count_chat_messages(messages, model), output_tokens=max_tokens)
    cost = CostEngine().price("openai", model, usage).cost_usd
    assert cost is not None
    return cost


class RedisServer:
    """A private redis-server on a free loopback port, which a test may restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
