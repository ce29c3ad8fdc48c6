"""A gateway with the sandbox upstream, served over loopback for tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from tests.servers import free_port, serve_in_thread
from thrifty.config import GatewayConfig, ProviderConfig, load_config
from thrifty.gateway.app import create_app
from thrifty.gateway.server import with_sandbox
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.record import RequestRecord


@dataclass
class RunningGateway:
    url: str
    db_url: str
    config: GatewayConfig

    def record(self, request_id: str, timeout_s: float = 10.0) -> RequestRecord:
        """Return a request's ledger record once the writer has stored it."""
        deadline = time.monotonic() + timeout_s
        ledger = open_ledger(self.db_url)
        try:
            while True:
                record = ledger.get(request_id)
                if record is not None:
                    return record
                if time.monotonic() > deadline:
                    raise AssertionError(f"request {request_id} never reached the ledger")
                time.sleep(0.05)
        finally:
            ledger.close()

    def ledger(self) -> Ledger:
        return open_ledger(self.db_url)

    def api_record(self, request_id: str) -> dict[str, object]:
        response = httpx.get(f"{self.url}/thrifty/requests/{request_id}", timeout=10)
        response.raise_for_status()
        body = response.json()
        assert isinstance(body, dict)
        return body


@contextlib.contextmanager
def running_gateway(
    tmp_path: Path,
    *,
    db_url: str | None = None,
    extra_providers: dict[str, ProviderConfig] | None = None,
    **overrides: object,
) -> Iterator[RunningGateway]:
    """Serve a gateway whose every provider is the sandbox mounted in it."""
    port = free_port()
    db_url = db_url or f"sqlite:///{tmp_path / 'ledger.db'}"
    config = load_config(None, db_url=db_url)
    config = with_sandbox(config, "127.0.0.1", port)
    overrides = {"spool_dir": tmp_path / "spool", **overrides}
    config = replace(config, **overrides)  # type: ignore[arg-type]
    if extra_providers:
        config = replace(config, providers={**config.providers, **extra_providers})
    with serve_in_thread(create_app(config), port) as url:
        yield RunningGateway(url=url, db_url=db_url, config=config)
