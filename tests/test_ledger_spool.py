"""The spool: JSON lines on disk, sealed segments, torn lines, the process lock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger_support import make_record
from thrifty.errors import LedgerError
from thrifty.ledger import Spool
from thrifty.ledger.serialize import encode_record


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    opened = Spool(tmp_path / "spool.jsonl")
    yield opened
    opened.close()


def ids(spool: Spool) -> list[str]:
    return [record.request_id for record in spool.pending()]


def test_append_then_pending(spool: Spool) -> None:
    for i in range(3):
        spool.append(make_record(f"req-{i}"))
    assert ids(spool) == ["req-0", "req-1", "req-2"]
    assert spool.pending()[1] == make_record("req-1")


def test_each_append_is_one_line(spool: Spool) -> None:
    spool.append(make_record("req-0"))
    spool.append(make_record("req-1"))
    data = spool.path.read_bytes()
    assert data == encode_record(make_record("req-0")) + encode_record(make_record("req-1"))


def test_seal_moves_lines_to_numbered_segment(spool: Spool, tmp_path: Path) -> None:
    spool.append(make_record("req-0"))
    assert spool.seal() == 1
    spool.append(make_record("req-1"))
    assert spool.seal() == 2
    spool.append(make_record("req-2"))

    assert (tmp_path / "spool.000001.jsonl").exists()
    assert (tmp_path / "spool.000002.jsonl").exists()
    assert ids(spool) == ["req-0", "req-1", "req-2"]


def test_seal_of_empty_file_creates_nothing(spool: Spool, tmp_path: Path) -> None:
    assert spool.seal() is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["spool.jsonl", "spool.jsonl.lock"]


def test_truncate_committed_deletes_sealed_segments(spool: Spool, tmp_path: Path) -> None:
    spool.append(make_record("req-0"))
    spool.seal()
    spool.append(make_record("req-1"))
    spool.seal()
    spool.append(make_record("req-2"))

    spool.truncate_committed(1)
    assert not (tmp_path / "spool.000001.jsonl").exists()
    assert ids(spool) == ["req-1", "req-2"]

    spool.truncate_committed(2)
    assert ids(spool) == ["req-2"]


def test_segment_numbers_continue_after_reopen(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool.jsonl")
    first.append(make_record("req-0"))
    first.seal()
    first.close()

    second = Spool(tmp_path / "spool.jsonl")
    second.append(make_record("req-1"))
    assert second.seal() == 2
    assert ids(second) == ["req-0", "req-1"]
    second.close()


def test_folder_path_keeps_spool_jsonl_inside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "state" / "spool")
    spool.append(make_record("req-0"))
    spool.close()
    assert spool.path == tmp_path / "state" / "spool" / "spool.jsonl"
    assert spool.path.exists()


def test_torn_last_line_is_skipped_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.jsonl"
    whole = encode_record(make_record("req-0")) + encode_record(make_record("req-1"))
    torn = encode_record(make_record("req-2"))[:57]
    path.write_bytes(whole + torn)

    with caplog.at_level(logging.WARNING, logger="thrifty.ledger.spool"):
        spool = Spool(path)
    assert ids(spool) == ["req-0", "req-1"]
    assert "skipped a torn last line of 57 bytes" in caplog.text

    # The next record starts on its own line instead of after the torn bytes.
    spool.append(make_record("req-3"))
    assert ids(spool) == ["req-0", "req-1", "req-3"]
    spool.close()


def test_torn_line_in_sealed_segment_is_skipped(
    spool: Spool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    segment = tmp_path / "spool.000007.jsonl"
    segment.write_bytes(encode_record(make_record("req-0")) + b'{"request_id": "req-')
    spool.append(make_record("req-1"))

    with caplog.at_level(logging.WARNING, logger="thrifty.ledger.spool"):
        assert ids(spool) == ["req-0", "req-1"]
    assert "spool.000007.jsonl: skipped a torn last line of 20 bytes" in caplog.text


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.write_bytes(encode_record(make_record("req-0")).rstrip(b"\n"))
    spool = Spool(path)
    spool.append(make_record("req-1"))
    assert ids(spool) == ["req-0", "req-1"]
    spool.close()


def test_invalid_middle_line_raises(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    path.write_bytes(
        encode_record(make_record("req-0")) + b"not json\n" + encode_record(make_record("req-2"))
    )
    spool = Spool(path)
    with pytest.raises(LedgerError, match=r"spool .*spool.jsonl line 2 is not a valid record"):
        spool.pending()
    spool.close()


def test_second_spool_on_same_path_is_rejected(spool: Spool) -> None:
    with pytest.raises(LedgerError, match="is in use by another process or writer"):
        Spool(spool.path)


def test_spool_path_is_free_after_close(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool.jsonl")
    first.append(make_record("req-0"))
    first.close()
    second = Spool(tmp_path / "spool.jsonl")
    assert ids(second) == ["req-0"]
    second.close()


def test_fsync_spool_appends_and_seals(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl", fsync=True)
    spool.append(make_record("req-0"))
    assert spool.seal() == 1
    assert ids(spool) == ["req-0"]
    spool.close()


def test_append_after_close_raises(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    spool.close()
    with pytest.raises(LedgerError, match="could not append record req-0 to spool"):
        spool.append(make_record("req-0"))
