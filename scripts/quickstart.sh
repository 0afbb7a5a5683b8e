#!/usr/bin/env bash
# Set up the environment, then run the main job: the embedded quickstart discovery run.
# Until `genesys run` lands (the evolution-engine issue), this validates the example specs and
# prints their resolved ladders. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
genesys validate examples/*.yaml
