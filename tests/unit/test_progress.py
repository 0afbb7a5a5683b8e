"""One duration format for progress lines and ETAs."""

from __future__ import annotations

import pytest

from genesys.progress import format_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (59.9, "0:59"),
        (61, "1:01"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (90061, "25:01:01"),
        (-5, "0:00"),
    ],
    ids=["zero", "under-a-minute", "minutes", "last-minute-of-hour", "hour", "a-day", "negative"],
)
def test_format_duration_minutes_then_hours(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
