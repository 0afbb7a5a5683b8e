"""Giving freed memory back: the trimming thread and the trim after a burst.

Where the C library has ``malloc_trim`` (glibc, as in the images), a burst of freed small
allocations is handed back to the system: the process's resident memory falls.
"""

from __future__ import annotations

import gc
import threading

import pytest

from genesys.controller import memory


def resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


needs_glibc = pytest.mark.skipif(not memory.can_trim(), reason="this C library has no malloc_trim")


@needs_glibc
def test_a_trim_hands_a_freed_burst_back_to_the_system() -> None:
    burst = [bytearray(3000) for _ in range(60_000)]  # ~180 MB in malloc'd blocks
    keep = [bytearray(16) for _ in range(1000)]  # survivors scattered in the heap
    high = resident_mb()
    del burst
    gc.collect()
    memory.trim()
    assert resident_mb() < high - 100, "the freed burst stayed resident"
    assert len(keep) == 1000


@needs_glibc
def test_the_trimming_thread_runs_until_stopped() -> None:
    stop = memory.start_trimming(0.01)
    assert stop is not None
    names = {thread.name for thread in threading.enumerate()}
    assert "memory-trim" in names
    stop.set()


def test_no_thread_when_trimming_is_off() -> None:
    assert memory.start_trimming(0) is None


def test_settling_freezes_what_exists_and_switches_threads_often() -> None:
    import gc
    import sys

    interval = sys.getswitchinterval()
    try:
        memory.settle()
        assert gc.get_freeze_count() > 0
        assert sys.getswitchinterval() == pytest.approx(memory.SWITCH_SECONDS)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
