"""Money as text: the one way Thrifty writes a Decimal amount of USD."""

from __future__ import annotations

from decimal import Decimal


def format_usd(amount: Decimal) -> str:
    """Write ``amount`` as a plain decimal string, exact, without exponent or trailing zeros.

    ``Decimal("1.25E-7")`` becomes ``"0.000000125"`` and ``Decimal("2.500")``
    becomes ``"2.5"``.
    """
    if amount.is_zero():
        return "0"
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
