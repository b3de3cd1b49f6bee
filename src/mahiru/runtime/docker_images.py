"""Images on a Docker-API engine: loaded, saved, inspected, and built without a Dockerfile.

Images are never pulled: every image must already be on the engine or be
loaded from an archive. Scratch containers (created, never started, to copy
files in or out of an image) are named `<scratch_prefix>-p<pid>h<host>-<random>`; they are
removed as soon as they are done with. Both they and images built with a
job's labels (step outputs, as earlier versions packaged them through the
engine) carry the making process's name, so `remove_scratch_leftovers` cleans
up after a crash.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

from mahiru.errors import Conflict, InvalidInput, NotFound
from mahiru.runtime.archives import CHUNK_SIZE, extract_tree, write_file_atomically, write_tree_tar
from mahiru.runtime.docker_connection import DockerConnection, logger
from mahiru.runtime.protocol import ImageConfig, ScratchLeftovers
from mahiru.runtime.steps import LABEL_JOB, LABEL_ROLE, ROLE_STEP

#: A command for creating a scratch container from an image that has none;
#: it is never run (but becomes the Cmd of an image committed from it).
_PLACEHOLDER_CMD = ["/bin/sh"]


class DockerImages(DockerConnection):
    """Images, and the scratch containers used to copy files into and out of them."""

    def __init__(
        self,
        client: Any | None = None,
        *,
        timeout: float = 120.0,
        scratch_prefix: str = "mahiru-scratch",
        scratch_dir: Path | None = None,
    ) -> None:
        super().__init__(client, timeout=timeout)
        self._scratch_prefix = scratch_prefix
        self._scratch_dir = scratch_dir

    # -- images ---------------------------------------------------------------

    def load_image(self, archive: Path) -> str:
        """Load a `docker save` archive, streamed from disk; returns the image id."""
        if not archive.is_file():
            raise NotFound(f"image archive {archive} does not exist")
        with (
            archive.open("rb") as content,
            self._engine(f"load image archive {archive}", bad_input_is_invalid=True),
        ):
            images = self._docker().images.load(content)
        ids = sorted({image.id for image in images})
        if len(ids) != 1:
            raise InvalidInput(f"{archive}: expected exactly one image, found {len(ids)}")
        return str(ids[0])

    def save_image(self, image: str, dest: Path) -> None:
        """Write `image` as a `docker save` archive to `dest` (temporary file, fsync, rename).

        Saved by name, the archive carries the name; saved by id, it carries none.
        """
        action = f"save image {image}"
        with self._engine(action):
            chunks = self._docker().api.get_image(image, chunk_size=CHUNK_SIZE)
        write_file_atomically(self._stream(chunks, action), dest)

    def has_image(self, image: str) -> bool:
        """Whether the engine has `image` (an id or a name)."""
        try:
            with self._engine(f"inspect image {image}"):
                self._docker().images.get(image)
        except NotFound:
            return False
        return True

    def remove_image(self, image: str) -> None:
        """Remove `image`; a missing image is fine, one in use is a Conflict."""
        try:
            with self._engine(f"remove image {image}"):
                self._docker().images.remove(image)
        except NotFound:
            pass

    def image_id(self, image: str) -> str:
        """The id of `image` (a name or an id); NotFound if the engine lacks it."""
        with self._engine(f"inspect image {image}"):
            return str(self._docker().images.get(image).id)

    # -- copying files out of and into images ---------------------------------

    def extract_data(self, image: str, dest: Path) -> None:
        """Copy the content of `/data` in `image` to `dest` without running the image.

        `dest` must not exist (or be empty) and appears complete or not at
        all. The archive is checked member by member: see `extract_tree`.
        """
        with self._scratch_container(image) as container:
            action = f"copy /data out of image {image}"
            try:
                with self._engine(action):
                    chunks, _ = self._docker().api.get_archive(container, "/data", CHUNK_SIZE)
            except NotFound:
                raise NotFound(f"image {image} has no /data") from None
            extract_tree(self._stream(chunks, action), dest, prefix="data")

    def build_image(
        self,
        base_image: str,
        trees: Mapping[str, Path],
        *,
        config: ImageConfig | None = None,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """A new image: `base_image` plus each host folder at its container path.

        No Dockerfile and nothing pulled: a scratch container from the base
        receives a tar of the folders and is committed. Files replace those of
        the base at the same paths. Returns the new image's id.
        """
        base_config = self._image_config(base_image)
        with tempfile.TemporaryFile(dir=self._scratch_dir) as archive:
            write_tree_tar(trees, archive)
            archive.seek(0)
            repository, version = docker.utils.parse_repository_tag(tag) if tag else (None, None)
            commit = commit_config(base_config, config or ImageConfig(), labels or {})
            with self._scratch_container(base_image, base_config) as container:
                with self._engine(f"copy files into a container of {base_image}"):
                    self._docker().api.put_archive(container, "/", archive)
                with self._engine(f"commit an image from {base_image}"):
                    result = self._docker().api.commit(
                        container, repository=repository, tag=version, conf=commit
                    )
        return str(result["Id"])

    def build_data_image(
        self,
        base_image: str,
        files: Path,
        *,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """A new data image: `base_image` plus the files of `files` under `/data`."""
        return self.build_image(base_image, {"/data": files}, labels=labels, tag=tag)

    def remove_scratch_leftovers(self) -> ScratchLeftovers:
        """Remove what crashed processes of this host left: scratch containers, output images.

        Each names the process that made it; those of live processes (another
        site on the same engine, say) are left alone. Only untagged images
        labelled with a job (packaged step outputs, saved and then removed
        unless the process died in between) are removed: a tagged image was
        kept on purpose, whoever built it.
        """
        with self._engine("list scratch containers"):
            # Only never-started ones: a container inherits its image's labels, so a step
            # running from an image this host built has the label of a process long gone.
            found = self._docker().api.containers(
                all=True, filters={"label": LABEL_SCRATCH_OWNER, "status": "created"}
            )
        # Any container of an image this host built inherits the label (the engine copies
        # a committed container's labels into the image): a step container "created" for
        # a moment before it starts, one an operator or a Slurm step made. Only a name
        # made by `_scratch_container` names its maker too; the label must agree with it.
        stale = {
            entry["Id"]: str(entry["Labels"][LABEL_SCRATCH_OWNER])
            for entry in found
            if _left_by_gone_owner(entry)
            and _named_as_scratch_of(entry)
            and (entry.get("Labels") or {}).get(LABEL_ROLE) != ROLE_STEP
        }
        for container in stale:
            self._remove_container(container)
        return ScratchLeftovers(
            containers=len(stale),
            images=self._remove_output_images(),
            owners=tuple(stale.values()),
        )

    def _remove_output_images(self) -> int:
        """Remove the untagged output images of gone processes; how many."""
        with self._engine("list output images"):
            found = self._docker().api.images(filters={"label": [LABEL_SCRATCH_OWNER, LABEL_JOB]})
        stale = [
            entry["Id"]
            for entry in found
            if LABEL_JOB in (entry.get("Labels") or {})
            and not _tagged(entry)
            and _left_by_gone_owner(entry)
        ]
        removed = 0
        for image in stale:
            try:
                with self._engine(f"remove image {image}"):
                    self._docker().api.remove_image(image)
            except NotFound:
                continue  # removed meanwhile, by another site starting up, say
            except Conflict as error:
                logger.info(
                    "kept an output image in use", extra={"image": image, "why": error.message}
                )
                continue
            removed += 1
        if removed:
            logger.info("removed output images of crashed processes", extra={"images": removed})
        return removed

    def _image_config(self, image: str) -> dict[str, Any]:
        with self._engine(f"inspect image {image}"):
            config = self._docker().api.inspect_image(image).get("Config") or {}
        return dict(config)

    @contextmanager
    def _scratch_container(
        self, image: str, config: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        """A container of `image`, never started, to copy files in or out; removed after.

        It is known by its (random) name from the start, so that it is
        removed even if an interruption lands while the engine creates it.
        """
        if config is None:
            config = self._image_config(image)
        # The engine refuses to create a container without any command.
        command = None if config.get("Cmd") or config.get("Entrypoint") else _PLACEHOLDER_CMD
        name = f"{self._scratch_prefix}-{_OWNER_NAME}-{uuid.uuid4().hex[:12]}"
        try:
            with self._engine(f"create a scratch container from image {image}"):
                self._docker().api.create_container(
                    image, command=command, name=name, labels={LABEL_SCRATCH_OWNER: _OWNER_TAG}
                )
            yield name
        finally:
            self._remove_container(name)


def commit_config(
    base: Mapping[str, Any], config: ImageConfig, labels: Mapping[str, str]
) -> dict[str, Any]:
    """The image configuration to commit a scratch container of `base` with.

    The engine fills every field left out here from the scratch container,
    labels included, so the base's settings carry over unless overridden.
    """
    commit: dict[str, Any] = {"Labels": {**(base.get("Labels") or {}), **labels}}
    if config.entrypoint is not None:
        commit["Entrypoint"] = list(config.entrypoint)
    cmd = config.cmd if config.cmd is not None else base.get("Cmd")
    if cmd:
        commit["Cmd"] = list(cmd)
    if config.user is not None:
        commit["User"] = config.user
    if config.workdir is not None:
        commit["WorkingDir"] = config.workdir
    if config.env:
        inherited = [e for e in base.get("Env") or [] if e.split("=", 1)[0] not in config.env]
        commit["Env"] = inherited + [f"{key}={value}" for key, value in config.env.items()]
    return commit


#: Names the process that made a scratch container or output image, so a crashed one's are found.
LABEL_SCRATCH_OWNER = "mahiru.scratch-owner"
_OWNER_TAG = f"{socket.gethostname()}:{os.getpid()}"
#: The maker in a scratch container's name: `p<pid>h<hash of the host name>`, as names
#: allow few characters. Names, unlike labels, do not pass on to images and containers.
_OWNER_NAME = f"p{os.getpid()}h{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}"


def _left_by_gone_owner(entry: Mapping[str, Any]) -> bool:
    """Whether a listed container or image names a gone process of this host as its maker."""
    return _owner_gone(str((entry.get("Labels") or {}).get(LABEL_SCRATCH_OWNER, "")))


def _named_as_scratch_of(entry: Mapping[str, Any]) -> bool:
    """Whether a listed container's name is a scratch container's naming the process its
    label names (so the label is its own, not inherited from its image)."""
    owner = str((entry.get("Labels") or {}).get(LABEL_SCRATCH_OWNER, ""))
    host, _, pid = owner.rpartition(":")
    mark = f"-p{pid}h{hashlib.sha256(host.encode()).hexdigest()[:8]}-"
    return any(mark in name for name in entry.get("Names") or [])


def _tagged(entry: Mapping[str, Any]) -> bool:
    """Whether a listed image has a name (engines list an untagged one as `<none>:<none>`)."""
    return any(tag != "<none>:<none>" for tag in entry.get("RepoTags") or [])


def _owner_gone(tag: str) -> bool:
    """Whether the process a scratch container names was of this host and is gone."""
    host, _, pid = tag.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
