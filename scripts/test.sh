#!/usr/bin/env bash
# Set up the environment, then run every quality gate and the tests. Idempotent.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m unit` or `scripts/test.sh -k crds`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
step "ruff lint";          ruff check .
step "ruff format";        ruff format --check .
step "mypy (strict)";      mypy operator/genesys trainer/genesys_trainer
step "import contracts";   lint-imports --no-cache
step "CRDs are current";   genesys crds --check
# The container images for the `images` tests, built here rather than inside a test (a cold
# build takes minutes): as root with apt-get, scripts/images.sh installs podman first; a warm
# build takes seconds. GENESYS_IMAGES=0 skips it (the `images` tests then build or skip).
step "container images"
if [ "${GENESYS_IMAGES:-1}" = 0 ]; then
  echo "skipped (GENESYS_IMAGES=0)"
elif command -v podman >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }; then
  scripts/images.sh build
else
  echo "skipped: no podman, and not root with apt-get to install it (the images tests skip)"
fi
step "pytest";
# pytest exits 5 when it collects no test; under `set -e` that fails the run, as it must.
pytest "$@"
