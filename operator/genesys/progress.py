"""How progress is printed: one format for every duration, progress line and ETA.

The local runner's status lines and the trainer's step logs both print elapsed times and ETAs
through :func:`format_duration`, so the two read alike. What must stay true: pure functions of
their arguments, no imports beyond the standard library (the trainer uses this module too).
"""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``M:SS`` under an hour, else ``H:MM:SS``; negative durations print as ``0:00``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


__all__ = ["format_duration"]
