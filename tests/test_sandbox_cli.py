"""`thrifty sandbox`: the command runs the emulator on the port it is given."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai

from tests.servers import free_port

THRIFTY = Path(sys.executable).parent / "thrifty"


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "thrifty sandbox exited before serving"
        try:
            httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer k"}, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"thrifty sandbox did not answer on {url} within {timeout_s}s")


def test_command_serves_on_the_given_port() -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(THRIFTY), "sandbox", "--port", str(port), "--default-max-tokens", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 7
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/v1" in stdout.decode()


def test_invalid_setting_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [str(THRIFTY), "sandbox", "--flex-rejection-rate", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "thrifty: error: sandbox setting flex_rejection_rate is 2.0; use a value from 0 to 1"
    ]


def test_help_names_the_options() -> None:
    result = subprocess.run(
        [str(THRIFTY), "sandbox", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for option in ("--host", "--port", "--ttft-ms", "--tokens-per-second", "--flex-rejection-rate"):
        assert option in result.stdout
