"""Cost allocation: cost-center rules and monthly chargeback statements.

``load_rules`` reads a rule file that maps attribution values and tags to
cost centers. ``build_statement`` aggregates a month of the ledger by team,
project, key, user or cost center, with unattributed spend on its own line.
"""

from __future__ import annotations

from thrifty.allocation.rules import AllocationRules, CostCenterRule, load_rules, parse_rules
from thrifty.allocation.statement import (
    OWNER_DIMENSIONS,
    Statement,
    build_statement,
    month_range,
    statement_csv,
    statement_markdown,
)

__all__ = [
    "OWNER_DIMENSIONS",
    "AllocationRules",
    "CostCenterRule",
    "Statement",
    "build_statement",
    "load_rules",
    "month_range",
    "parse_rules",
    "statement_csv",
    "statement_markdown",
]
