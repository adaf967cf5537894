"""The lines of a compiler / linker log that say what failed (setup.py's build and the JIT build).
Torch-free and import-free, so setup.py can load it by path before anything is installed."""

from __future__ import annotations

import re

__all__ = ["error_summary"]

_ERROR_LINE = re.compile(r"(^|[\s:(])(fatal )?error( [A-Z]?\d+)?:|undefined reference|cannot find -l|#error")


def error_summary(log: str, limit: int = 8, width: int = 300) -> list[str]:
    """The error lines of ``log`` (first ``limit``, deduplicated, each cut to ``width``); its last lines if
    it has none."""
    found: list[str] = []
    for line in log.splitlines():
        text = line.strip()[:width]
        if _ERROR_LINE.search(text) and text not in found:
            found.append(text)
    if not found:
        found = [line.strip()[:width] for line in log.splitlines() if line.strip()][-limit:]
    return found[:limit]
