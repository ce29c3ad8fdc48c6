"""``thrifty serve --workers N``: what each worker gets, and when several are rejected.

The budget held across two workers is tested with PostgreSQL and Redis in
tests/test_control_replicas.py (test_budget_holds_across_workers).
"""

from __future__ import annotations

import gc
import socket
import sys
from pathlib import Path

import pytest

from thrifty.config import load_config
from thrifty.errors import ConfigError
from thrifty.gateway.runtime import RuntimeSettings, tune_runtime
from thrifty.gateway.workers import check_shared_state, reuse_port_socket, worker_config


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        "providers:\n  openai:\n    base_url: http://127.0.0.1:9\n"
        f"gateway:\n  spool_dir: {tmp_path / 'spool'}\n{text}"
    )
    return path


def test_worker_spools_are_separate(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, ""), db_url="sqlite:///:memory:")

    assert worker_config(config, 0).spool_dir == tmp_path / "spool"
    assert worker_config(config, 1).spool_dir == tmp_path / "spool" / "worker-1"
    assert worker_config(config, 3).spool_dir == tmp_path / "spool" / "worker-3"


def test_workers_without_redis_rejected(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "control: {}\n"), db_url="sqlite:///:memory:")

    check_shared_state(config, 1)
    with pytest.raises(ConfigError, match=r"--workers 2 needs control\.redis"):
        check_shared_state(config, 2)


def test_workers_with_redis_accepted(tmp_path: Path) -> None:
    text = "control:\n  redis:\n    url: redis://127.0.0.1:6379/0\n"
    config = load_config(_config(tmp_path, text), db_url="sqlite:///:memory:")

    check_shared_state(config, 2)


def test_workers_without_control_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THRIFTY_MASTER_KEY", raising=False)
    config = load_config(_config(tmp_path, ""), db_url="sqlite:///:memory:")

    check_shared_state(config, 4)
    with pytest.raises(ConfigError, match="--workers is 0"):
        check_shared_state(config, 0)


def test_reuse_port_sockets_share_port() -> None:
    first = reuse_port_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = reuse_port_socket("127.0.0.1", port)
    try:
        assert second.getsockname() == ("127.0.0.1", port)
        assert second.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    finally:
        first.close()
        second.close()


def test_tune_runtime_freezes_and_sets() -> None:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_runtime(RuntimeSettings(gc_thresholds=(5000, 15, 25), switch_interval_s=0.002))

        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (5000, 15, 25)
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
