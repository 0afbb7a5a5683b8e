"""The project's container images for tests: their names, and building them with podman.

:func:`ensure_images` runs ``scripts/images.sh build`` once per test session (podman's layer
cache makes a build of unchanged sources quick), so a test never runs an image built from an
older checkout. Without podman, or where podman cannot run containers, it skips with the reason.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

from genesys import __version__
from support.podman import podman_binary, podman_env

REPO = Path(__file__).resolve().parents[2]
IMAGES = {
    "operator": f"genesys-operator:{__version__}",
    "agent": f"genesys-agent:{__version__}",
    "trainer": f"genesys-trainer:{__version__}",
}
BUILD_TIMEOUT_SECONDS = 3600


@functools.cache
def _build() -> str:
    """Build the images; '' when done, else why not."""
    if podman_binary() is None:
        return "podman is not installed (scripts/images.sh installs it as root)"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "images.sh"), "build"],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"scripts/images.sh build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return ""


def ensure_images() -> dict[str, str]:
    """The image names, once they are built from this checkout (skip without podman)."""
    reason = _build()
    if reason:
        pytest.skip(reason)
    return dict(IMAGES)


__all__ = ["IMAGES", "ensure_images"]
