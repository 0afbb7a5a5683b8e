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
step "pytest";
# pytest exits 5 when it collects no test; under `set -e` that fails the run, as it must.
pytest "$@"
