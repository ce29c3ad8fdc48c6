"""``thrifty.track``: meter an ``openai`` or ``anthropic`` client in process.

::

    import openai, thrifty

    client = thrifty.track(openai.OpenAI(), feature="search", user="u-42")
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])

``track`` returns a copy of the client (made with the SDK's own
``with_options``) whose calls are recorded to the ledger with their cost.
What the client returns is unchanged: the same objects, streams and errors.
Sync and async clients of both SDKs work, streaming included.

Attribution: the ``team``, ``project``, ``user``, ``feature``, ``session``
and ``tags`` given to ``track`` are defaults. A request's own
``X-Thrifty-*`` headers (``extra_headers=``) and body ``metadata`` override
them, with the precedence the gateway uses.

Records go through a ``Tracker``: one ledger, one cost engine and one
background writer. ``track`` shares one tracker per database URL unless one
is passed. ``tracker.flush()`` waits until the ledger has every record, and
``tracker.close()`` stops the tracker, as the process's exit does.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from thrifty.config import DEFAULT_STATE_DIR, ProviderKind
from thrifty.errors import ConfigError
from thrifty.gateway.attribution import Attribution
from thrifty.integrations.metering import ClientInfo
from thrifty.integrations.transport import AsyncMeteredTransport, MeteredTransport
from thrifty.integrations.writer import BackgroundWriter
from thrifty.ledger import default_db_url, open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine

logger = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")

DEFAULT_SPOOL_ROOT = DEFAULT_STATE_DIR / "track-spool"


class Tracker:
    """The recorder of wrapped clients' calls: a ledger, prices and a writer.

    ``db_url`` defaults to ``$THRIFTY_DB_URL`` or the SQLite file under
    ``./.thrifty``. ``spool_root`` is the folder of the local spool that keeps
    records until the ledger has them; each process uses a subfolder named by
    its pid.

    The writer runs in a thread, which a forked child does not inherit, so
    a tracker used after a fork (a server's worker processes) starts a new
    writer in the child on its first record.
    """

    def __init__(
        self,
        db_url: str | None = None,
        *,
        spool_root: Path | None = None,
        engine: CostEngine | None = None,
        flush_interval_s: float = 0.25,
    ) -> None:
        self.db_url = db_url or default_db_url()
        self.engine = engine or CostEngine()
        self.spool_root = spool_root or DEFAULT_SPOOL_ROOT
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._writer = self._start_writer()

    def submit(self, record: RequestRecord) -> None:
        """Queue one record for the ledger; never blocks on the database."""
        self._current_writer().submit(record)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until every record submitted so far is in the ledger."""
        self._current_writer().flush(timeout_s)

    async def aflush(self) -> None:
        """Like ``flush``, awaited without blocking the caller's event loop."""
        await self._current_writer().aflush()

    def close(self) -> None:
        """Write the queued records and stop; wrapped clients then record nothing."""
        self._current_writer().close()

    def _start_writer(self) -> BackgroundWriter:
        ledger = open_ledger(self.db_url)
        try:
            return BackgroundWriter(ledger, self.spool_root, flush_interval_s=self.flush_interval_s)
        except BaseException:
            ledger.close()
            raise

    def _current_writer(self) -> BackgroundWriter:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    logger.info("process forked: starting a record writer for pid %d", os.getpid())
                    self._writer = self._start_writer()
                    self._pid = os.getpid()
        return self._writer


_shared: dict[str, Tracker] = {}
_shared_lock = threading.Lock()


def shared_tracker(db_url: str | None = None) -> Tracker:
    """Return the process-wide tracker of a database URL, creating it on first use."""
    url = db_url or default_db_url()
    with _shared_lock:
        tracker = _shared.get(url)
        if tracker is None:
            tracker = _shared[url] = Tracker(url)
        return tracker


def track(
    client: ClientT,
    *,
    feature: str | None = None,
    user: str | None = None,
    team: str | None = None,
    project: str | None = None,
    session: str | None = None,
    tags: Mapping[str, str] | None = None,
    provider: str | None = None,
    db_url: str | None = None,
    tracker: Tracker | None = None,
) -> ClientT:
    """Return a copy of an ``openai`` or ``anthropic`` client that records each call.

    ``provider`` names the provider for records and prices when the client
    points at another OpenAI-compatible service (``"groq"``); it defaults
    to ``"openai"`` or ``"anthropic"``. ``tracker`` defaults to the shared
    tracker of ``db_url``. Raises ConfigError for a client that is not an
    ``openai`` or ``anthropic`` client.
    """
    kind, asynchronous = _client_kind(client)
    info = ClientInfo(
        provider=provider or kind,
        kind=kind,
        client_name=f"{type(client).__module__.split('.')[0]}.{type(client).__name__}",
        attribution=Attribution(
            team=team,
            project=project,
            user=user,
            feature=feature,
            session=session,
            tags=dict(tags or {}),
        ),
    )
    sink = tracker or shared_tracker(db_url)
    inner = _http_client_of(client, asynchronous)
    http_client: httpx2.Client | httpx2.AsyncClient
    if asynchronous:
        assert isinstance(inner, httpx2.AsyncClient)
        http_client = httpx2.AsyncClient(
            transport=AsyncMeteredTransport(inner, info, sink.engine, sink.submit),
            headers=inner.headers,
            timeout=inner.timeout,
            trust_env=False,
        )
    else:
        assert isinstance(inner, httpx2.Client)
        http_client = httpx2.Client(
            transport=MeteredTransport(inner, info, sink.engine, sink.submit),
            headers=inner.headers,
            timeout=inner.timeout,
            trust_env=False,
        )
    copy: ClientT = client.with_options(http_client=http_client)  # type: ignore[attr-defined]
    return copy


def _client_kind(client: object) -> tuple[ProviderKind, bool]:
    """Return the API kind of an SDK client and whether it is asynchronous."""
    import openai

    if isinstance(client, openai.AsyncOpenAI):
        return "openai", True
    if isinstance(client, openai.OpenAI):
        return "openai", False
    try:
        import anthropic
    except ImportError:
        anthropic = None  # type: ignore[assignment]
    if anthropic is not None:
        if isinstance(client, anthropic.AsyncAnthropic):
            return "anthropic", True
        if isinstance(client, anthropic.Anthropic):
            return "anthropic", False
    raise ConfigError(
        f"thrifty.track() takes an openai.OpenAI, openai.AsyncOpenAI, anthropic.Anthropic "
        f"or anthropic.AsyncAnthropic client, not {type(client).__name__}"
    )


def _http_client_of(client: Any, asynchronous: bool) -> httpx2.Client | httpx2.AsyncClient:
    # NOTE: the SDKs keep their HTTP client in the private ``_client``
    # attribute (openai 3.x, anthropic 2.x); there is no public accessor.
    inner = getattr(client, "_client", None)
    expected = httpx2.AsyncClient if asynchronous else httpx2.Client
    if not isinstance(inner, expected):
        raise ConfigError(
            f"thrifty.track() needs a client whose http_client is an {expected.__module__}."
            f"{expected.__name__}; got {type(inner).__name__}. Pass an httpx2 client "
            "as http_client, or none"
        )
    return inner
