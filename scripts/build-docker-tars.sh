#!/usr/bin/env bash
# Build the service images of a distributed deployment and save each one as a
# `docker save` archive in build/ (this backs `make docker_tars`):
#
#   build/mahiru-registry.tar   the registry under Gunicorn (uvicorn workers)
#   build/mahiru-site.tar       a site under Gunicorn, one worker
#   build/mahiru-nginx.tar      the TLS-terminating nginx proxy
#   build/mahiru-data-base.tar  the image step outputs sit on, for the sites' engines
#
# Next to each archive, NAME.tar.id holds the image id it contains, so that
# deployments load an archive only when it holds a different image.
#
# Nothing is pulled from a registry and nothing is fetched inside `docker
# build` except Debian packages over http: the images build FROM mahiru-base
# (scripts/build-base-image.sh), and Mahiru and its Python dependencies are
# installed from wheels built here on the host (build/wheels), because HTTPS
# from inside containers may not work (a host-only proxy CA, for example).
#
# Usage: build-docker-tars.sh [--no-cache]
# Environment: PYTHON (default .venv/bin/python, the venv `make venv` makes).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BUILD="$ROOT/build"
CONTEXT="$BUILD/docker-context"
build_args=()

for arg in "$@"; do
    case "$arg" in
        --no-cache) build_args+=(--no-cache) ;;
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
            exit 0
            ;;
        *) die "unknown argument '$arg' (expected --no-cache)" ;;
    esac
done

[[ -x "$PYTHON" ]] || die "no Python at $PYTHON; run 'make venv' first or set PYTHON"

bash "$ROOT/scripts/ensure-engine.sh"
bash "$ROOT/scripts/build-base-image.sh"

total="$(now)"
mkdir -p "$BUILD"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/wheels"

# The wheels of Mahiru and of everything it needs, for CPython of the base
# image (Debian bookworm: 3.11) on this architecture.
start="$(now)"
# A fixed timestamp makes the Mahiru wheel, and so the images, the same
# bytes when the code is the same: unchanged images are not reloaded.
SOURCE_DATE_EPOCH=315532800 "$PYTHON" -m pip wheel --quiet --disable-pip-version-check \
    --wheel-dir "$CONTEXT/wheels" "${ROOT}[server,postgres]" uvicorn-worker \
    >"$BUILD/pip-wheel.log" 2>&1 || {
    tail -n 20 "$BUILD/pip-wheel.log" >&2
    die "building the wheels failed; see build/pip-wheel.log"
}
log_took "wheels ($(find "$CONTEXT/wheels" -name '*.whl' | wc -l) in build/docker-context/wheels)" "$start"
cp "$ROOT/deploy/service/gunicorn.conf.py" "$ROOT/deploy/nginx/nginx.conf" "$CONTEXT/"

build_image() {
    local image="$1" dockerfile="$2" start
    shift 2
    start="$(now)"
    docker build --quiet "${build_args[@]}" -f "$dockerfile" -t "$image:latest" "$@" "$CONTEXT" \
        >"$BUILD/docker-build-$image.log" 2>&1 || {
        tail -n 30 "$BUILD/docker-build-$image.log" >&2
        die "docker build of $image failed; see build/docker-build-$image.log"
    }
    log_took "docker build $image" "$start"
}

# Save an image unless its archive already holds exactly that image.
save_image() {
    local image="$1" tar="$BUILD/$1.tar" id start
    id="$(docker image inspect --format '{{.Id}}' "$image:latest")"
    if [[ -f "$tar" && -f "$tar.id" && "$(cat "$tar.id")" == "$id" ]]; then
        log "${tar#"$ROOT"/} is up to date ($id)"
        return 0
    fi
    start="$(now)"
    docker save -o "$tar.partial" "$image:latest"
    mv "$tar.partial" "$tar"
    echo "$id" >"$tar.id"
    log_took "docker save ${tar#"$ROOT"/} ($(du -h "$tar" | cut -f1))" "$start"
}

build_image mahiru-registry "$ROOT/deploy/service/Dockerfile" --build-arg SERVICE=registry
build_image mahiru-site "$ROOT/deploy/service/Dockerfile" --build-arg SERVICE=site
build_image mahiru-nginx "$ROOT/deploy/nginx/Dockerfile"

for image in mahiru-registry mahiru-site mahiru-nginx mahiru-data-base; do
    save_image "$image"
done
log_took "docker_tars" "$total"
