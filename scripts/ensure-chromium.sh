#!/usr/bin/env bash
# Make sure headless Chromium and the NSS tools are installed, for the
# dashboard's browser tests (tests/e2e/test_dashboard.py): Debian's
# `chromium` (no registry or snap needed) and `libnss3-tools` (certutil and
# pk12util, to give each test browser a user certificate). Idempotent.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start=$(now)
apt_install chromium libnss3-tools
command -v chromium >/dev/null || die "chromium is still missing after installing it"
log_took "chromium and the NSS tools are ready:" "$start"
