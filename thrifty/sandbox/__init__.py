"""A provider emulator: OpenAI's and Anthropic's HTTP APIs, offline.

Its text is deterministic filler that states what it is. Its usage numbers
follow the providers' rules, counted with the real tokenizers (estimates for
Anthropic, whose tokenizer is not public). It is the upstream for tests,
demos and benchmarks, never a stand-in for a real model's answers.
"""

from thrifty.sandbox.app import create_app
from thrifty.sandbox.server import SandboxServer, run
from thrifty.sandbox.settings import SandboxSettings

__all__ = ["SandboxServer", "SandboxSettings", "create_app", "run"]
