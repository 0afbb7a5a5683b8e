"""Giving the operator's freed memory back to the operating system.

CPython returns freed objects to its own allocator and to the C library's ``malloc``, and both
keep the pages for reuse: after a burst (a report's figures, a listing of a run's Jobs, a
whole listing of its store) the process's resident memory stays at the burst's height, and
bursts of different runs pile up. The operator therefore, on a thread of its own, asks glibc
every :data:`TRIM_SECONDS` to hand free heap pages back (``malloc_trim``), and trims again
after each report.

The objects that exist once the operator has started (its imports: the Kubernetes client's
models alone are tens of megabytes) are moved out of the garbage collector's reach
(:func:`settle`), so a full collection walks only what the runs hold, and the interpreter
switches threads every millisecond rather than every five: a reconcile whose request has
returned waits less for the interpreter while the report thread renders.

On a C library without ``malloc_trim`` (musl, macOS) trimming does nothing.

What must stay true: nothing here changes what the operator computes; :func:`trim` is safe
from any thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable

TRIM_SECONDS = float(os.environ.get("GENESYS_MEMORY_TRIM_SECONDS", "30"))
"""How often the operator hands free heap pages back to the system (0: never)."""
SWITCH_SECONDS = 0.001
"""The interpreter's thread switch interval once the operator has started."""

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None where it has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def can_trim() -> bool:
    """True when this C library can hand free heap pages back (glibc)."""
    return _malloc_trim() is not None


def trim() -> bool:
    """Hand the C heap's free pages back to the system; True when some were."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False


def settle() -> None:
    """Once started: freeze what exists out of the collector's scans; switch threads often."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_SECONDS)


def start_trimming(interval: float = TRIM_SECONDS) -> threading.Event | None:
    """Trim every ``interval`` seconds on a daemon thread; set the event returned to stop.

    None (and no thread) when ``interval`` is 0 or the C library cannot trim.
    """
    if interval <= 0 or not can_trim():
        return None
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                trim()
            except Exception as exc:  # never worth stopping the operator for
                log.warning("could not trim the heap: %s", exc)

    threading.Thread(target=loop, name="memory-trim", daemon=True).start()
    return stop


__all__ = [
    "SWITCH_SECONDS",
    "TRIM_SECONDS",
    "can_trim",
    "settle",
    "start_trimming",
    "trim",
]
