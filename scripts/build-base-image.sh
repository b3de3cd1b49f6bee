#!/usr/bin/env bash
# Build the local base images from Debian packages, with no registry pulls:
#
#   mahiru-base:latest       Debian bookworm minbase + python3 + ca-certificates
#                            (debootstrap, then `docker import`). Services and
#                            compute assets build FROM it; apt-get works inside.
#   mahiru-data-base:latest  what a data asset or step output sits on: an empty
#                            /data plus a static busybox (about 2 MB in all).
#
# Why busybox and not FROM mahiru-base: data images are moved between sites
# as `docker save` archives, and an archive carries every layer of its image.
# On mahiru-base each data asset would drag along ~100 MB of Debian; on this
# image it adds ~1 MB compressed, yet the image still runs (`sh`, `tar`, `cp`,
# `ls`, ...) so files can be copied out with `docker run` as well as with
# `docker cp`/the archive API, which need no binaries at all.
#
# Usage: build-base-image.sh [--force] [--refresh-rootfs]
#   --force           re-import both images even if they exist (from cache)
#   --refresh-rootfs  also discard the cached root filesystems and rebuild them
#
# Idempotent: existing images are kept. The root filesystems are cached as
# tarballs in build/cache/, so after image loss (`docker system prune -a`, a
# new engine) the images come back in seconds without re-running debootstrap.
# Environment: MAHIRU_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$ROOT/build/cache"
MIRROR="${MAHIRU_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
INCLUDE=python3,ca-certificates
BASE_IMAGE=mahiru-base:latest
DATA_IMAGE=mahiru-data-base:latest
# The cache file names carry what went into them, so changing the suite or the
# package list builds a fresh root filesystem instead of reusing a stale one.
BASE_TAR="$CACHE_DIR/rootfs-$SUITE-minbase-${INCLUDE//,/+}.tar"
DATA_TAR="$CACHE_DIR/rootfs-data-busybox-static.tar"
PATH_ENV=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

force=""
refresh=""
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --refresh-rootfs) force=1 refresh=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
            exit 0
            ;;
        *) die "unknown argument '$arg' (expected --force or --refresh-rootfs)" ;;
    esac
done

timeout 10 docker info >/dev/null 2>&1 \
    || die "no container engine answers 'docker info'; run scripts/ensure-engine.sh first"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

if [[ -z "$force" ]] && image_exists "$BASE_IMAGE" && image_exists "$DATA_IMAGE"; then
    log "$BASE_IMAGE and $DATA_IMAGE already exist (use --force to rebuild)"
    exit 0
fi

mkdir -p "$CACHE_DIR"
# Two builds at once (CI and a developer, or two make targets) would race on
# the cache files and tags; the second simply waits for the first.
exec 9>"$CACHE_DIR/.build-base-image.lock"
flock 9
if [[ -z "$force" ]] && image_exists "$BASE_IMAGE" && image_exists "$DATA_IMAGE"; then
    log "$BASE_IMAGE and $DATA_IMAGE were built meanwhile by another run"
    exit 0
fi

WORK="$(mktemp -d "$CACHE_DIR/work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if [[ -n "$refresh" ]]; then
    rm -f "$BASE_TAR" "$DATA_TAR"
fi

# Trim the root filesystem the way Debian's own "-slim" images do: the ~40 MB
# of .debs debootstrap leaves behind, and ~50 MB of manuals, translations and
# docs nobody reads in a container. The dpkg excludes keep packages that
# derived images apt-get install from bringing them back. Copyright files
# (the packages' licences) stay.
slim_rootfs() {
    local dir="$1"
    # These deletions are rooted at $dir: never let them reach the host's /.
    [[ "$dir" == "$WORK"/* && -d "$dir/etc/dpkg" ]] || die "refusing to slim '$dir': not a fresh rootfs under $WORK"
    printf '%s\n' \
        'path-exclude /usr/share/doc/*' \
        'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' \
        'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' \
        'path-include /usr/share/locale/locale.alias' \
        'path-exclude /usr/share/lintian/*' \
        >"$dir/etc/dpkg/dpkg.cfg.d/mahiru-slim"
    find "$dir/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    rm -rf "$dir/usr/share/man" "$dir/usr/share/info" "$dir/usr/share/lintian" \
        "$dir/var/cache/apt/archives/"*.deb "$dir/var/cache/apt/"*.bin \
        "$dir/var/lib/apt/lists/"* "$dir/var/log/"*.log
    mkdir -p "$dir/usr/share/man" "$dir/usr/share/info"
}

build_base_rootfs() {
    require_root
    apt_install debootstrap debian-archive-keyring
    local dir="$WORK/base" start
    start="$(now)"
    local dblog="$MAHIRU_STATE_DIR/debootstrap.log"
    mkdir -p "$MAHIRU_STATE_DIR"
    log "debootstrap --variant=minbase --include=$INCLUDE $SUITE (log: $dblog, 1-2 min)"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$dir" "$MIRROR" \
        </dev/null >"$dblog" 2>&1 || {
        tail -n 20 "$dblog" >&2
        die "debootstrap failed; see $dblog"
    }
    log_took "debootstrap" "$start"
    # debootstrap copies the build host's identity in; Docker provides its own
    # at run time, and an image should not carry where it was built.
    : >"$dir/etc/resolv.conf"
    echo localhost >"$dir/etc/hostname"
    slim_rootfs "$dir"
    start="$(now)"
    tar --numeric-owner -C "$dir" -cf "$WORK/base.tar" .
    mv "$WORK/base.tar" "$BASE_TAR"
    log_took "rootfs tarball $(du -h "$BASE_TAR" | cut -f1) -> ${BASE_TAR#"$ROOT"/}" "$start"
}

build_data_rootfs() {
    local dir="$WORK/data" deb start
    start="$(now)"
    mkdir -p "$WORK/deb" "$dir"
    # apt-get download needs package lists; a fresh machine may have none yet.
    # apt downloads as user _apt, who must reach and write the directory.
    chmod 0755 "$WORK"
    chmod 0777 "$WORK/deb"
    if ! (cd "$WORK/deb" && apt-get download busybox-static) >>"$WORK/apt.log" 2>&1; then
        require_root
        apt-get update >>"$WORK/apt.log" 2>&1 || true
        (cd "$WORK/deb" && apt-get download busybox-static) >>"$WORK/apt.log" 2>&1 || {
            tail -n 20 "$WORK/apt.log" >&2
            die "could not download the Debian package busybox-static"
        }
    fi
    deb="$(ls "$WORK"/deb/busybox-static_*.deb)"
    dpkg-deb -x "$deb" "$WORK/pkg"
    mkdir -p "$dir/bin" "$dir/data" "$dir/tmp" "$dir/etc"
    cp "$WORK/pkg/bin/busybox" "$dir/bin/busybox"
    # Just the applets that inspecting and copying data needs.
    local applet
    for applet in sh ls cat cp mv rm mkdir find tar gzip sha256sum du wc head tail sleep true env; do
        ln -s busybox "$dir/bin/$applet"
    done
    chmod 1777 "$dir/tmp"
    printf 'root:x:0:0:root:/data:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$dir" -cf "$WORK/data.tar" .
    mv "$WORK/data.tar" "$DATA_TAR"
    log_took "data rootfs ($(basename "$deb"), $(du -h "$DATA_TAR" | cut -f1))" "$start"
}

import_image() {
    local tarball="$1" image="$2" start old new
    shift 2
    start="$(now)"
    old="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
    new="$(docker import --message "built by scripts/build-base-image.sh from ${tarball#"$ROOT"/}" \
        "$@" "$tarball" "$image")" || die "docker import of $tarball as $image failed"
    # A forced rebuild would otherwise leave the previous image behind,
    # untagged; images built FROM it keep it alive, and then it stays.
    if [[ -n "$old" && "$old" != "$new" ]]; then
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
    log_took "docker import $image ($(docker image inspect --format '{{.Size}}' "$image" | numfmt --to=iec))" "$start"
}

if [[ -n "$force" ]] || ! image_exists "$BASE_IMAGE"; then
    if [[ -f "$BASE_TAR" ]]; then
        log "reusing cached root filesystem ${BASE_TAR#"$ROOT"/}"
    else
        build_base_rootfs
    fi
    import_image "$BASE_TAR" "$BASE_IMAGE" \
        --change "ENV PATH=$PATH_ENV" \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]'
else
    log "$BASE_IMAGE already exists"
fi

if [[ -n "$force" ]] || ! image_exists "$DATA_IMAGE"; then
    if [[ -f "$DATA_TAR" ]]; then
        log "reusing cached root filesystem ${DATA_TAR#"$ROOT"/}"
    else
        build_data_rootfs
    fi
    import_image "$DATA_TAR" "$DATA_IMAGE" \
        --change 'ENV PATH=/bin' \
        --change 'WORKDIR /data' \
        --change 'CMD ["sh"]'
else
    log "$DATA_IMAGE already exists"
fi
