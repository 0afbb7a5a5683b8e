"""The environment of a child process that runs design code: nothing secret passes.

What must stay true: only an allow-list of harmless variables passes (paths, locale, temp dir,
thread counts); anything whose name looks like a credential is dropped even if allow-listed.
"""

from __future__ import annotations

from collections.abc import Mapping

ALLOWED = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONHASHSEED",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        "CUDA_VISIBLE_DEVICES",
        "VIRTUAL_ENV",
        "GENESYS_SANDBOX",
    }
)
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "AUTH")


def scrubbed_env(
    source: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed, secret-free subset of ``source``, plus ``extra``."""
    kept = {
        name: value
        for name, value in source.items()
        if name in ALLOWED and not any(marker in name.upper() for marker in SECRET_MARKERS)
    }
    kept["PYTHONNOUSERSITE"] = "1"
    return {**kept, **(extra or {})}
