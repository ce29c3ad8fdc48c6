"""A full disk under the spool: new requests get a 503 unless the gateway fails open.

The gateway test mounts a real 1 MiB tmpfs for the spool (which needs root)
and fills it; the writer test makes ``os.write`` fail with ENOSPC instead, so
it runs anywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.gateway_support import RunningGateway, running_gateway
from tests.ledger_support import make_record
from thrifty.config import load_config
from thrifty.errors import ConfigError
from thrifty.ledger import RecordWriter, Spool, open_ledger

CHAT = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}'
HEADERS = {"authorization": "Bearer sk", "content-type": "application/json"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test; skip where mounting is not allowed."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"could not mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file into ``folder`` until the filesystem has no space left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    error: OSError | None = None
    try:
        while error is None:
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as exc:
                error = exc
    finally:
        os.close(fd)
    assert error.errno == errno.ENOSPC
    return filler


def _post(gateway: RunningGateway) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", content=CHAT, headers=HEADERS, timeout=30
    )


def _stored_ids(db_url: str) -> list[str]:
    ledger = open_ledger(db_url)
    try:
        with ledger.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT request_id FROM requests")).all()
    finally:
        ledger.close()
    return [row.request_id for row in rows]


def _wait_for_ids(db_url: str, expected: set[str]) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        stored = _stored_ids(db_url)
        if expected <= set(stored) or time.monotonic() > deadline:
            return stored
        time.sleep(0.05)


def test_full_spool_disk_rejects_then_recovers(tmp_path: Path, small_disk: Path) -> None:
    with running_gateway(tmp_path, spool_dir=small_disk / "spool") as gateway:
        assert _post(gateway).status_code == 200
        filler = _fill(small_disk)

        # The gateway learns of the full disk on the first record it cannot spool
        # (records may still fit into the last page of the spool file before that).
        # Those calls reached the provider, so they are served and recorded.
        served: list[str] = []
        response = _post(gateway)
        while response.status_code == 200 and len(served) < 20:
            served.append(response.headers["x-thrifty-request-id"])
            response = _post(gateway)
        rejected = [response] + [_post(gateway) for _ in range(2)]
        for response in rejected:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            error = response.json()["error"]
            assert error["type"] == "server_error"
            assert "cannot record requests" in error["message"]
            assert "gateway.spool_full" in error["message"]
            assert "x-thrifty-request-id" not in response.headers

        filler.unlink()
        time.sleep(1.1)
        after = _post(gateway)
        assert after.status_code == 200

        served.append(after.headers["x-thrifty-request-id"])
        stored = _wait_for_ids(gateway.db_url, set(served))
    assert 1 <= len(served) - 1 < 20
    assert len(stored) == len(served) + 1
    assert len(set(stored)) == len(stored)
    assert set(served) <= set(stored)


def test_full_spool_disk_fail_open_serves(tmp_path: Path, small_disk: Path) -> None:
    with running_gateway(
        tmp_path, spool_dir=small_disk / "spool", spool_full="fail_open"
    ) as gateway:
        _fill(small_disk)
        responses = [_post(gateway) for _ in range(4)]
        assert [response.status_code for response in responses] == [200] * 4
        served = {response.headers["x-thrifty-request-id"] for response in responses}
        stored = _wait_for_ids(gateway.db_url, served)
    assert sorted(stored) == sorted(served)


def _enospc(fd: int, data: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


async def test_writer_keeps_records_spool_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(db_url)
    writer = RecordWriter(ledger, Spool(tmp_path / "spool"), flush_interval_s=0.01)
    await writer.start()
    real_write = os.write
    monkeypatch.setattr("thrifty.ledger.spool.os.write", _enospc)
    writer.submit(make_record("req-unspooled"))
    assert writer.accepting() is False
    assert writer.spool_error is not None
    assert "No space left on device" in writer.spool_error

    monkeypatch.setattr("thrifty.ledger.spool.os.write", real_write)
    monkeypatch.setattr("thrifty.ledger.writer.SPOOL_PROBE_INTERVAL_S", 0.0)
    assert writer.accepting() is True
    assert writer.spool_error is None
    await writer.stop()
    ledger.close()
    assert _stored_ids(db_url) == ["req-unspooled"]


def test_spool_full_config_rejects_unknown(tmp_path: Path) -> None:
    path = tmp_path / "thrifty.yaml"
    path.write_text("gateway:\n  spool_full: ignore\n")
    with pytest.raises(ConfigError, match=r"gateway\.spool_full is 'ignore'"):
        load_config(path)
    path.write_text("gateway:\n  spool_full: fail_open\n")
    assert load_config(path).spool_full == "fail_open"
    path.write_text("gateway: {}\n")
    assert load_config(path).spool_full == "reject"
