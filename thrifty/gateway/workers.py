"""Several gateway processes on one port: ``thrifty serve --workers N``.

A supervisor starts N worker processes. Each binds its own listening socket
with SO_REUSEPORT on the same address, so the kernel spreads new connections
over them, and each runs the whole gateway on its own event loop. They share
what a set of replicas shares: the ledger database, and the budget,
rate-limit and cache counters in Redis (``control.redis``), without which
each worker would hold a budget of its own.

Worker ``i`` keeps its spool in ``spool_dir/worker-i`` (worker 0 in
``spool_dir`` itself, as a single process does), so a worker that is
restarted replays what it left. The supervisor restarts a worker that exits
while the others run, and stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from thrifty.config import GatewayConfig, load_config
from thrifty.errors import ConfigError, GatewayStartError

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0
# A worker that exits sooner than this after it started failed its start-up
# (a configuration error, a port in use): restarting it would only fail again.
START_UP_S = 30.0


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """The serve command's options, from which a worker process builds its gateway."""

    host: str
    port: int
    config_path: Path | None
    db_url: str | None
    sandbox: bool
    log_level: str = "info"


def worker_config(config: GatewayConfig, index: int) -> GatewayConfig:
    """Return worker ``index``'s configuration: its own spool folder."""
    if index == 0:
        return config
    return replace(config, spool_dir=config.spool_dir / f"worker-{index}")


def check_shared_state(config: GatewayConfig, workers: int) -> None:
    """Refuse several workers whose budgets and rate limits would not be shared."""
    if workers < 1:
        raise ConfigError(f"--workers is {workers}; give 1 or more")
    if workers == 1:
        return
    from thrifty.control.config import ControlConfig

    control = config.sections.get("control")
    if control is None:
        control = ControlConfig()
        if control.master_key() is None:
            return  # no admission step: nothing to share but the ledger
    assert isinstance(control, ControlConfig)
    if control.redis is None:
        raise ConfigError(
            f"--workers {workers} needs control.redis in thrifty.yaml, so that the workers "
            "share budget and rate-limit counters; set control.redis.url or run one worker"
        )


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """Bind a listening socket that other workers may bind to as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(spec: WorkerSpec, index: int) -> None:
    """Run one worker: load the configuration, bind the shared port, serve until stopped."""
    from thrifty.gateway.server import uvicorn_server, with_sandbox

    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker-{index} %(message)s")
    logging.getLogger("thrifty").setLevel(logging.INFO)
    config = load_config(spec.config_path, db_url=spec.db_url)
    if spec.sandbox:
        config = with_sandbox(config, spec.host, spec.port)
    config = worker_config(config, index)
    sock = reuse_port_socket(spec.host, spec.port)
    server = uvicorn_server(config, spec.host, spec.port, log_level=spec.log_level, tune=True)
    server.run(sockets=[sock])


class Supervisor:
    """Start ``count`` workers, restart one that exits, stop them all on a signal.

    NOTE: a supervisor killed with SIGKILL cannot stop its workers, which then
    keep serving until they are stopped themselves.
    """

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self.spec = spec
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._stopping = False

    def run(self) -> None:
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(self.count):
                self._start(index)
            while not self._stopping:
                self._restart_exited()
                time.sleep(0.2)
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=run_worker, args=(self.spec, index), name=f"thrifty-worker-{index}"
        )
        process.start()
        self._workers[index] = process
        self._started_at[index] = time.monotonic()
        logger.info("worker %d started (pid %s)", index, process.pid)

    def _restart_exited(self) -> None:
        for index, process in list(self._workers.items()):
            if process.is_alive() or self._stopping:
                continue
            if time.monotonic() - self._started_at[index] < START_UP_S:
                self._stopping = True
                raise GatewayStartError(
                    f"gateway worker {index} exited during start-up with status "
                    f"{process.exitcode}; its error is in the log above"
                )
            logger.warning(
                "worker %d (pid %s) exited with status %s; restarting it in %.0f s",
                index,
                process.pid,
                process.exitcode,
                RESTART_DELAY_S,
            )
            time.sleep(RESTART_DELAY_S)
            if not self._stopping:
                self._start(index)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM: uvicorn shuts down and the writer flushes
        for index, process in self._workers.items():
            process.join(timeout=30)
            if process.is_alive():
                logger.error("worker %d did not stop within 30 s; killing it", index)
                process.kill()
                process.join()
