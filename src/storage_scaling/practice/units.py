"""Storage sizes as people write them (``500MB``, ``1.5GiB``, ``48.48e6`` bytes) and counts
(``300M`` pixels)."""

from __future__ import annotations

import math
import re

UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
         "p": 1e15, "pb": 1e15, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40, "pib": 2 ** 50}
_SIZE = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")
COUNTS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}


def parse_size(text, what: str = "--budget") -> float:
    """Bytes from ``500MB``, ``1.5 GiB``, ``2e9`` or a number (decimal units: 1 MB = 10^6 B, as
    the paper's budgets; binary ones with ``i``: 1 MiB = 2^20 B). One ValueError otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else None
        if not match or unit not in UNITS:
            raise ValueError(f"{what} {text!r} is not a size; write bytes as 500MB, 1.5GiB, 10GB or 48.48e6 "
                             f"(units: {', '.join(u for u in UNITS if u and len(u) > 1)})")
        value = float(match.group(1)) * UNITS[unit]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive size, got {text!r}; write bytes as 500MB, 1.5GiB or 48.48e6")
    if value < 1:
        raise ValueError(f"{what} {text!r} is {value:g} bytes, less than one byte; write bytes as 500MB, 1.5GiB "
                         "or 48.48e6")
    return value


def parse_count(text, what: str) -> int:
    """A whole number written as ``300000000``, ``300M``, ``1.5G`` or ``3e8`` (decimal: M = 10^6)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else None
        if not match or unit not in COUNTS:
            raise ValueError(f"{what} {text!r} is not a number; write it as 300000000, 300M or 3e8")
        value = float(match.group(1)) * COUNTS[unit]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{what} must be a whole number of at least 1, got {text!r}")
    return int(round(value))


def format_size(x: float) -> str:
    """Decimal units, three significant digits: '512 B', '7.09 kB', '48.5 MB', '10 GB'."""
    if not math.isfinite(float(x)):
        return "n/a"
    x = float(x)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:,.0f} B"


def format_count(x: float) -> str:
    """Decimal suffixes, as :func:`parse_count` reads them: '200M', '1.5G', '950'."""
    x = float(x)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.4g}{unit}"
    return f"{x:.0f}"


def format_duration(seconds: float) -> str:
    """A time estimate as people read it: seconds below 90 s, minutes below 1.5 h, then hours."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
