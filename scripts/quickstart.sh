#!/usr/bin/env bash
# Set up the environment, then run the main job: the embedded quickstart discovery run
# (examples/quickstart.yaml: offline proposer, CPU rungs nano -> micro, the built-in corpus,
# local storage in ./.genesys). Idempotent: a rerun resumes or, when finished, reprints the
# leaderboard and rewrites the report. Extra arguments go to `genesys run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
genesys validate examples/*.yaml
genesys run examples/quickstart.yaml --workdir . "$@"
