#!/usr/bin/env bash
# Build the scenario asset images and save them as `docker save` archives in
# build/assets/ (this backs `make assets`):
#
#   compute-to-data-input.tar  /data/data.json = [1, 21, 2, 8, 5, 3, 13, 1, 34]
#   minmax.tar                 the min/max compute asset (stdlib Python, runs as nobody)
#   output-base.tar            an empty data image that step outputs are built on
#
# Makes sure a container engine answers and the base images exist first (the
# scripts next to this one), then runs `python -m mahiru.runtime.assets`. The
# sources live in src/mahiru/runtime/asset_sources/ (see scenarios/assets/).
# Nothing is pulled from any registry.
#
# Usage: build-assets.sh [--force] [--out DIR]
#   --force    rebuild archives that already exist
#   --out DIR  where to write the archives (default build/assets)
# Environment: PYTHON (default .venv/bin/python, the venv `make venv` makes).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
OUT="$ROOT/build/assets"
force=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) force=(--force) ;;
        --out)
            [[ $# -ge 2 ]] || die "--out needs a directory"
            OUT="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
            exit 0
            ;;
        *) die "unknown argument '$1' (expected --force or --out DIR)" ;;
    esac
    shift
done

[[ -x "$PYTHON" ]] || die "no Python at $PYTHON; run 'make venv' first or set PYTHON"
"$PYTHON" -c 'import mahiru.runtime' 2>/dev/null \
    || die "$PYTHON cannot import mahiru; run 'make venv' first or set PYTHON"

bash "$ROOT/scripts/ensure-engine.sh"
bash "$ROOT/scripts/build-base-image.sh"

start="$(now)"
"$PYTHON" -m mahiru.runtime.assets --out "$OUT" "${force[@]}"
log_took "scenario assets in ${OUT#"$ROOT"/}" "$start"
