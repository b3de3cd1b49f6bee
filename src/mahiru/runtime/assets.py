"""The scenario asset images, built from the sources in `asset_sources/` and saved as archives.

- `compute-to-data-input`: `/data/data.json` with the input data set, on the data base image.
- `minmax`: the min/max program on the Python base image; it runs as nobody.
- `output-base`: an empty data image, on which step outputs are built.

Run `python -m mahiru.runtime.assets --out build/assets` (`scripts/build-assets.sh`
does, after making sure the engine and the base images exist). Archives that
already exist are kept unless --force is given or the sources changed: a
stamp file next to each archive records the digest of the sources it was
built from.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import MahiruError, NotFound, Unavailable
from mahiru.runtime.docker_engine import DockerRuntime
from mahiru.runtime.protocol import (
    COMPUTE_BASE_IMAGE,
    DATA_BASE_IMAGE,
    ContainerRuntime,
    ImageConfig,
)

logger = logging.getLogger("mahiru.runtime.assets")

SOURCES = Path(__file__).parent / "asset_sources"
TAG_PREFIX = "mahiru-assets/"
MINMAX_DIR = "/opt/mahiru-minmax"

#: The names of the scenario assets, which are also their archive names (`<name>.tar`).
INPUT_ASSET = "compute-to-data-input"
MINMAX_ASSET = "minmax"
OUTPUT_BASE_ASSET = "output-base"


@dataclass(frozen=True, slots=True)
class BaseImages:
    """The locally built images the assets are built on (see scripts/build-base-image.sh)."""

    data: str = DATA_BASE_IMAGE
    compute: str = COMPUTE_BASE_IMAGE


def sources_digest() -> str:
    """The sha256 over every asset source file (names and contents), in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(
        p for p in SOURCES.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        digest.update(str(path.relative_to(SOURCES)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _labels(name: str) -> dict[str, str]:
    return {"mahiru.asset": name, "org.opencontainers.image.title": f"mahiru scenario {name}"}


def _build_input(runtime: ContainerRuntime, tag: str, bases: BaseImages) -> str:
    return runtime.build_data_image(
        bases.data, SOURCES / "compute_to_data_input", labels=_labels(INPUT_ASSET), tag=tag
    )


def _build_minmax(runtime: ContainerRuntime, tag: str, bases: BaseImages) -> str:
    with tempfile.TemporaryDirectory(prefix="mahiru-minmax-") as staging:
        program = Path(staging, "minmax")
        shutil.copytree(
            SOURCES / "minmax", program, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        config = ImageConfig(
            cmd=("python3", "-I", f"{MINMAX_DIR}/minmax.py"),
            user="65534:65534",
            workdir="/tmp",
            env={"PYTHONDONTWRITEBYTECODE": "1"},
        )
        return runtime.build_image(
            bases.compute,
            {MINMAX_DIR: program},
            config=config,
            labels=_labels(MINMAX_ASSET),
            tag=tag,
        )


def _build_output_base(runtime: ContainerRuntime, tag: str, bases: BaseImages) -> str:
    # A copy of the data base image, so that loading the asset elsewhere never
    # retags (and so replaces) that site's own mahiru-data-base.
    return runtime.build_image(bases.data, {}, labels=_labels(OUTPUT_BASE_ASSET), tag=tag)


_Builder = Callable[[ContainerRuntime, str, BaseImages], str]
_BUILDERS: dict[str, tuple[_Builder, Callable[[BaseImages], str]]] = {
    INPUT_ASSET: (_build_input, lambda bases: bases.data),
    MINMAX_ASSET: (_build_minmax, lambda bases: bases.compute),
    OUTPUT_BASE_ASSET: (_build_output_base, lambda bases: bases.data),
}


def build_scenario_assets(
    runtime: ContainerRuntime,
    out_dir: Path,
    *,
    force: bool = False,
    bases: BaseImages = BaseImages(),
) -> dict[str, Path]:
    """Build the scenario asset images and save each as `out_dir/<name>.tar`.

    Returns the archive of every asset by name. Existing archives built from
    the current sources are kept unless `force`. Each image is also left on the engine, tagged
    `mahiru-assets/<name>:latest`, and the archive carries that tag.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    archives: dict[str, Path] = {}
    current = sources_digest()
    for name, (build, base_of) in _BUILDERS.items():
        archive = out_dir / f"{name}.tar"
        stamp = out_dir / f"{name}.sources"
        archives[name] = archive
        up_to_date = stamp.exists() and stamp.read_text().strip() == current
        if archive.exists() and up_to_date and not force:
            logger.info("asset archive exists", extra={"asset": name, "archive": str(archive)})
            continue
        base = base_of(bases)
        if not runtime.has_image(base):
            raise NotFound(
                f"base image {base} is missing; build it with scripts/build-base-image.sh"
            )
        tag = f"{TAG_PREFIX}{name}:latest"
        previous = runtime.image_id(tag) if runtime.has_image(tag) else None
        start = time.monotonic()
        image = build(runtime, tag, bases)
        runtime.save_image(tag, archive)
        stamp.write_text(current + "\n")
        if previous is not None and previous != image:
            _remove_if_unused(runtime, previous)
        logger.info(
            "asset image built",
            extra={
                "asset": name,
                "image": image,
                "archive": str(archive),
                "seconds": round(time.monotonic() - start, 2),
            },
        )
    return archives


def _remove_if_unused(runtime: ContainerRuntime, image: str) -> None:
    """Drop an image a rebuild untagged, unless something still uses it."""
    try:
        runtime.remove_image(image)
    except MahiruError as error:
        logger.info("kept a previous asset image", extra={"image": image, "why": error.message})


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the scenario asset archives; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m mahiru.runtime.assets",
        description="Build the scenario asset images as docker-save archives.",
    )
    parser.add_argument("--out", type=Path, default=Path("build/assets"), help="output folder")
    parser.add_argument("--force", action="store_true", help="rebuild existing archives")
    parser.add_argument("--data-base", default=DATA_BASE_IMAGE, help="base of data images")
    parser.add_argument("--compute-base", default=COMPUTE_BASE_IMAGE, help="base of compute images")
    args = parser.parse_args(argv)
    try:
        archives = build_scenario_assets(
            DockerRuntime(),
            args.out,
            force=args.force,
            bases=BaseImages(data=args.data_base, compute=args.compute_base),
        )
    except MahiruError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 4 if isinstance(error, Unavailable) else 1
    for name, archive in archives.items():
        print(f"{name}: {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
