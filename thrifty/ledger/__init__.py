"""Durable request records and their aggregates.

``open_ledger(url)`` opens (and migrates) the database; ``RecordWriter``
takes records from the request path through a local ``Spool`` into it in
batches; ``Ledger.report`` aggregates them.
"""

from __future__ import annotations

from thrifty.ledger.database import DEFAULT_DB_URL, default_db_url
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.report import DIMENSIONS, Report, ReportGroup, ReportQuery, Totals
from thrifty.ledger.spool import Spool
from thrifty.ledger.store import Ledger, open_ledger
from thrifty.ledger.writer import RecordWriter

__all__ = [
    "DEFAULT_DB_URL",
    "DIMENSIONS",
    "Ledger",
    "RecordWriter",
    "Report",
    "ReportGroup",
    "ReportQuery",
    "RequestRecord",
    "Spool",
    "Totals",
    "default_db_url",
    "open_ledger",
]
