"""Where this site's steps run: the container engine that holds their images, the runner
that runs them, the limits each step gets, and the work folder their inputs and outputs
are laid out in."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import MahiruError
from mahiru.model.identifiers import SiteId
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.protocol import ImageEngine, ScratchLeftovers
from mahiru.runtime.runner import StepRunner
from mahiru.runtime.steps import LABEL_INSTANCE, LABEL_SITE

logger = logging.getLogger("mahiru.site.jobs")


@dataclass(frozen=True, slots=True)
class StepEnvironment:
    """The engine that holds the steps' images, the runner that runs them, the limits they
    run under, and their work folder (which the runner can reach: with a cluster, a folder
    every node shares)."""

    engine: ImageEngine
    runner: StepRunner
    limits: StepLimits
    work_dir: Path

    @property
    def instance(self) -> str:
        """Tells this site installation's containers from another's with the same site id.

        Two deployments on one engine (tests, demos, a staging copy) may use
        the same site id; step containers are labelled with this too, so a
        restarting site stops only its own.
        """
        return hashlib.sha256(str(self.work_dir.resolve()).encode()).hexdigest()[:16]

    def labels(self, site: SiteId) -> dict[str, str]:
        """The labels that mark the step containers of this installation of `site`."""
        return {LABEL_SITE: str(site), LABEL_INSTANCE: self.instance}

    def clean_up(self) -> None:
        """Remove what a crash may have left: output spaces, work folders, scratch containers
        and unsaved output images.

        Nothing of it is needed after a restart: every unfinished step is
        redone from the state it is in, with fresh work folders.
        """
        work = self.work_dir
        work.mkdir(parents=True, exist_ok=True)
        unmounted = self.runner.release_output_spaces(work)
        removed = 0
        for entry in list(work.iterdir()):
            removed += 1
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        try:
            scratch = self.engine.remove_scratch_leftovers()
        except MahiruError as error:
            scratch = ScratchLeftovers()
            logger.warning("cannot look for scratch containers and images: %s", error.message)
        if unmounted or removed or scratch:
            logger.info(
                "cleaned up after an earlier run",
                extra={
                    "output_spaces": unmounted,
                    "work_entries": removed,
                    "scratch": scratch.containers,
                    "scratch_left_by": sorted(set(scratch.owners)),
                    "output_images": scratch.images,
                },
            )
