"""Kubernetes quantities (``500m``, ``8Gi``, ``1.5``) as numbers, parsed one way everywhere.

Every quantity of a spec (CPU, memory, /dev/shm, the sandbox's memory) goes through
``kubernetes.utils.parse_quantity``, the client library's parser, so the operator, the local
runner and the sandbox agree with the API server on what a quantity means.

What must stay true: ``kubernetes`` is imported when a quantity is parsed, not when this module
is, so importing it stays light.
"""

from __future__ import annotations

import math
from decimal import Decimal

MIB = 2**20


def parse(text: str) -> Decimal:
    """The quantity's value; ValueError for text that is not a quantity."""
    from kubernetes.utils.quantity import parse_quantity

    value: Decimal = parse_quantity(text)
    return value


def cpus(text: str) -> float:
    """CPUs as a number (``"500m"`` -> 0.5)."""
    return float(parse(text))


def whole_cpus(text: str) -> int:
    """CPUs rounded up to a whole thread count, at least 1 (``"500m"`` -> 1)."""
    return max(1, math.ceil(parse(text)))


def memory_bytes(text: str) -> int:
    """Bytes of a memory quantity (``"8Gi"`` -> 8589934592)."""
    return int(parse(text))


def memory_mib(text: str) -> int:
    """MiB of a memory quantity, rounded up, at least 1."""
    return max(1, math.ceil(parse(text) / MIB))


__all__ = ["MIB", "cpus", "memory_bytes", "memory_mib", "parse", "whole_cpus"]
