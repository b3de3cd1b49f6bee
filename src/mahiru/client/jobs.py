"""Clients for jobs: `JobsClient` for users (internal API), `PeerJobsClient` for sites.

`extract_data_files` reads the `/data` files out of a result's `docker save`
archive in pure Python, so users need no container engine to see results.
"""

from __future__ import annotations

import builtins
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from mahiru.client.downloads import BlobSink, download_to_file, stream_image
from mahiru.client.http import ApiClient, request
from mahiru.client.site import PeerClient
from mahiru.errors import InvalidInput
from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import JobStatus, StepAssignment, StepStatus
from mahiru.model.serialization import job_from_dict, job_to_dict
from mahiru.model.workflow import Job
from mahiru.storage import BlobInfo, BlobStore
from mahiru.storage.blobs import normalise_digest

#: Called as `progress(status)` each time `wait` polls a job.
JobProgress = Callable[["JobView"], None]


class JobView:
    """A job as the internal API shows it: its status and its steps' statuses."""

    def __init__(self, status: JobStatus, steps: list[StepStatus]) -> None:
        self.status = status
        self.steps = steps

    @classmethod
    def from_json(cls, data: Any) -> JobView:
        """Parse `{"job": JobStatus, "steps": [StepStatus, ...]}` strictly."""
        if not isinstance(data, Mapping) or set(data) != {"job", "steps"}:
            raise InvalidInput("a job view must have exactly the fields job and steps")
        return cls(
            JobStatus.from_dict(data["job"]), [StepStatus.from_dict(s) for s in data["steps"]]
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as the API sends it."""
        return {"job": self.status.to_dict(), "steps": [s.to_dict() for s in self.steps]}


class JobsClient(ApiClient):
    """Jobs at one's own site: submit, list, show, wait for, cancel, fetch outputs."""

    def submit(self, job: Job) -> JobView:
        """Submit a job; PermissionDenied (with the planner's explanation) if none may run."""
        return JobView.from_json(
            request(self._http, "POST", "/jobs", json={"job": job_to_dict(job)}).json()
        )

    def status(self, job_id: str) -> JobView:
        """A job's status, plan and step states."""
        return JobView.from_json(request(self._http, "GET", f"/jobs/{quote(job_id)}").json())

    def list(self) -> list[JobStatus]:
        """The jobs of one's own party submitted at this site, oldest first."""
        data = request(self._http, "GET", "/jobs").json()
        return [JobStatus.from_dict(item) for item in data["jobs"]]

    def cancel(self, job_id: str) -> JobView:
        """Cancel a job that has not finished."""
        path = f"/jobs/{quote(job_id)}/cancel"
        return JobView.from_json(request(self._http, "POST", path).json())

    def wait(
        self,
        job_id: str,
        timeout: float,
        progress: JobProgress | None = None,
        *,
        interval: float = 0.5,
    ) -> JobView:
        """Poll until the job is finished (or `timeout` seconds pass); its last view."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.status(job_id)
            if progress is not None:
                progress(view)
            if view.status.state.terminal or time.monotonic() >= deadline:
                return view
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.01)))

    def download_output_archive(self, job_id: str, name: str, dest: Path) -> BlobInfo:
        """Download a workflow output's image archive to `dest` (digest checked)."""
        path = f"/jobs/{quote(job_id)}/outputs/{quote(name)}/image"
        return download_to_file(self._http, path, dest, None, resume=False, progress=None)

    def download_output(self, job_id: str, name: str, dest_dir: Path) -> builtins.list[Path]:
        """Extract the `/data` files of a workflow output into `dest_dir`; the files written."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".mahiru-result-", dir=dest_dir) as temp:
            archive = Path(temp) / "image.tar"
            self.download_output_archive(job_id, name, archive)
            return extract_data_files(archive, dest_dir)


class PeerJobsClient(PeerClient):
    """Another site's external API for jobs: hand over steps, ask status, fetch results."""

    def assign(self, assignment: StepAssignment) -> list[StepStatus]:
        """Hand the peer its steps; their statuses there."""
        path = f"/jobs/{quote(assignment.job_id)}/assignment"
        data = request(self._http, "POST", path, json=assignment.to_dict()).json()
        return [StepStatus.from_dict(item) for item in data["steps"]]

    def step_statuses(self, job_id: str) -> list[StepStatus]:
        """The statuses of the steps of a job the peer runs."""
        data = request(self._http, "GET", f"/jobs/{quote(job_id)}/steps").json()
        return [StepStatus.from_dict(item) for item in data["steps"]]

    def cancel(self, job_id: str) -> list[StepStatus]:
        """Cancel the peer's unfinished steps of a job."""
        data = request(self._http, "POST", f"/jobs/{quote(job_id)}/cancel").json()
        return [StepStatus.from_dict(item) for item in data["steps"]]

    def readers(self, job_id: str) -> tuple[Job, list[StepStatus]]:
        """A job submitted at the peer, and its steps that read data stored at this site."""
        data = request(self._http, "GET", f"/jobs/{quote(job_id)}/readers").json()
        steps = data.get("steps") if isinstance(data, dict) else None
        if not isinstance(steps, list) or not all(isinstance(item, dict) for item in steps):
            raise InvalidInput(f"the answer about job {job_id} has no list of steps")
        return job_from_dict(data.get("job")), [StepStatus.from_dict(item) for item in steps]

    def fetch_result(self, result: ResultId, blobs: BlobStore) -> BlobInfo:
        """Copy a result's image into a blob store (resumed, digest verified)."""
        sink = BlobSink(blobs, None)
        try:
            served = stream_image(
                self._http,
                f"/results/{quote(str(result))}/image",
                sink,
                expected_digest=None,
                progress=None,
            )
            info = sink.writer.commit()
            if info.digest != normalise_digest(served):
                raise InvalidInput(f"{result}: received sha256 {info.digest}, announced {served}")
            return info
        finally:
            sink.writer.abort()


# --- reading /data out of a `docker save` archive --------------------------------------


def extract_data_files(archive: Path, dest_dir: Path) -> list[Path]:
    """Write the files under `/data` of the image in `archive` into `dest_dir`.

    Layers are applied in the manifest's order; whiteouts (`.wh.<name>`,
    `.wh..wh..opq`) remove what lower layers put there. Only regular files
    and directories are written; absolute names and `..` are refused.
    """
    tree: dict[str, tuple[str, str]] = {}  # path under /data -> (layer member, kind)
    try:
        with tarfile.open(archive) as outer:
            for layer in _layers(outer):
                file = outer.extractfile(layer)
                if file is None:
                    raise InvalidInput(f"{archive}: layer {layer} is not a file")
                with tarfile.open(fileobj=file) as inner:
                    _apply_layer(inner, layer, tree)
            return _write_tree(outer, tree, dest_dir)
    except tarfile.TarError as error:
        raise InvalidInput(f"{archive}: not a usable image archive: {error}") from None


def _layers(outer: tarfile.TarFile) -> list[str]:
    manifest_file = outer.extractfile("manifest.json")
    if manifest_file is None:
        raise InvalidInput("the image archive has no manifest.json")
    manifest = json.loads(manifest_file.read())
    if not isinstance(manifest, list) or len(manifest) != 1:
        raise InvalidInput("the image archive must hold exactly one image")
    layers = manifest[0].get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise InvalidInput("the image manifest lists no layers")
    return list(layers)


def _data_path(name: str) -> str | None:
    """`name` relative to `data/`, '' for `data` itself, None outside; InvalidInput if unsafe."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(f"unsafe archive member {name!r}")
    parts = [p for p in path.parts if p != "."]
    if not parts or parts[0] != "data":
        return None
    return "/".join(parts[1:])


def _apply_layer(inner: tarfile.TarFile, layer: str, tree: dict[str, tuple[str, str]]) -> None:
    for member in inner.getmembers():
        relative = _data_path(member.name)
        if relative is None:
            continue
        parent, _, base = relative.rpartition("/")
        if base == ".wh..wh..opq":
            prefix = f"{parent}/" if parent else ""
            for key in [k for k in tree if k.startswith(prefix) and k != parent]:
                del tree[key]
            continue
        if base.startswith(".wh."):
            gone = f"{parent}/{base[4:]}" if parent else base[4:]
            for key in [k for k in tree if k == gone or k.startswith(f"{gone}/")]:
                del tree[key]
            continue
        if not relative:
            continue
        if member.isdir():
            tree[relative] = (f"{layer}\0{member.name}", "dir")
        elif member.isfile() or (member.islnk() and _data_path(member.linkname)):
            # tarfile reads a hard link's content from its target in the same layer.
            tree[relative] = (f"{layer}\0{member.name}", "file")
        else:
            tree.pop(relative, None)  # links and devices are not data


def _write_tree(outer: tarfile.TarFile, tree: dict[str, tuple[str, str]], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    by_layer: dict[str, list[tuple[str, str]]] = {}
    for relative, (source, kind) in sorted(tree.items()):
        target = dest.joinpath(*relative.split("/"))
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        layer, _, member = source.partition("\0")
        by_layer.setdefault(layer, []).append((member, relative))
    for layer, members in by_layer.items():
        file = outer.extractfile(layer)
        assert file is not None  # checked while reading the layers
        with tarfile.open(fileobj=file) as inner:
            for member, relative in members:
                target = dest.joinpath(*relative.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                content = inner.extractfile(member)
                if content is None:
                    continue
                with target.open("wb") as out:
                    shutil.copyfileobj(content, out)
                written.append(target)
    return sorted(written)
