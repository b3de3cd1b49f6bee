"""`mahiru assets`: upload, list, show, download and delete the assets of one's own site.

Every command talks to the site's internal API over mutual TLS, as a user of
the site's owner party (--cert/--key: a certificate from `mahiru certs user`;
uploads and deletions need the admin role) and checks the site's certificate
against the network CA (--ca).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mahiru.cli.connection import CONNECTION_HELP, echo_json, site_client, site_options
from mahiru.cli.errors import handle_errors
from mahiru.errors import Conflict, InvalidInput

# The client, the model, the archive writer and rich are imported where a command runs,
# not here: `--help` needs none of them.
if TYPE_CHECKING:
    from mahiru.client.site import Progress as ProgressCallback
    from mahiru.model.assets import AssetRecord
    from mahiru.model.identifiers import AssetId, ResultId

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(dir_okay=False, path_type=Path)


def _asset_id(text: str) -> AssetId | ResultId:
    from mahiru.model.identifiers import AssetId, ResultId, parse_identifier

    identifier = parse_identifier(text, ("asset", "result"))
    assert isinstance(identifier, AssetId | ResultId)  # guaranteed by the allowed kinds
    return identifier


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _record_json(record: AssetRecord) -> dict[str, Any]:
    from mahiru.client.site import asset_record_to_json

    return asset_record_to_json(record)


def _describe(record: AssetRecord) -> str:
    asset = record.asset
    digest = f"sha256:{asset.image_digest[:12]}…" if asset.image_digest else "no image"
    return f"{asset.id} ({asset.kind.value}, {_size(record.size)}, {digest})"


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr for hashing and sending; None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description:>9}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                labels = {"hash": "hashing", "upload": "uploading", "download": "receiving"}
                tasks[phase] = bar.add_task(labels.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield update


def _show_progress(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


@click.group("assets", epilog=CONNECTION_HELP)
def assets_group() -> None:
    """Upload, list, show, download and delete the assets of your party's site."""


@assets_group.command("upload")
@click.argument("asset_id")
@click.argument(
    "image", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=False
)
@click.option(
    "--kind",
    type=click.Choice(["data", "compute"]),
    default="data",
    show_default=True,
    help="A data set, or a compute asset (a program).",
)
@click.option(
    "--metadata",
    "metadata_path",
    type=_FILE,
    help="A YAML or JSON file with the asset's metadata (a mapping).",
)
@click.option(
    "--no-image",
    is_flag=True,
    help="Describe the asset without an image (it can run or be used by nothing yet).",
)
@site_options()
@handle_errors
def upload_command(
    asset_id: str,
    image: Path | None,
    kind: str,
    metadata_path: Path | None,
    no_image: bool,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Describe ASSET_ID at the site and upload its IMAGE (a container image archive).

    The image is streamed from disk after its sha256 is computed; the site
    keeps it only if the digest matches and the archive is sound. Uploading
    the same asset again changes nothing. An upload that fails or is
    interrupted leaves no asset without an image behind.

    \b
    Example:
      mahiru assets pack data.json --out input.tar
      mahiru assets upload asset:party1.example.org:input:party1.example.org:site1 input.tar
    """
    from mahiru.files import read_yaml
    from mahiru.model.assets import Asset, AssetKind
    from mahiru.model.identifiers import AssetId

    identifier = AssetId.parse(asset_id)
    if image is None and not no_image:
        raise InvalidInput(
            f"no IMAGE given for {asset_id}: name the image archive to upload"
            " (`mahiru assets pack FILES --out X.tar` makes one), or give --no-image"
            " to describe the asset without one"
        )
    if image is not None and no_image:
        raise InvalidInput("give either IMAGE or --no-image, not both")
    metadata: dict[str, Any] = {}
    if metadata_path is not None:
        loaded = read_yaml(metadata_path)
        if not isinstance(loaded, dict):
            raise InvalidInput(f"{metadata_path}: the metadata must be a mapping")
        metadata = loaded
    asset = Asset(identifier, AssetKind(kind), metadata)
    with (
        site_client(site_url, cert, tls_key, ca) as site,
        _progress_bar(_show_progress(as_json)) as bar,
    ):
        record = site.upload_asset(asset, image, progress=bar)
    if as_json:
        echo_json(_record_json(record))
    else:
        click.echo(f"stored {_describe(record)}")


@assets_group.command("pack")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The image archive to write (refused if it exists, unless --overwrite).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@handle_errors
def pack_command(files: tuple[Path, ...], out: Path, overwrite: bool) -> None:
    """Pack FILES (files or folders) into a data image archive, under /data.

    No container engine is needed; upload the result with `mahiru assets upload`.
    """
    if out.exists() and not overwrite:
        raise Conflict(f"{out} exists; give --overwrite to replace it")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent}: no such directory")
    from mahiru.runtime.archives import write_data_image

    size = write_data_image(files, out)
    click.echo(f"wrote {out} ({size} bytes): {', '.join(f.name for f in files)} under /data")


@assets_group.command("list")
@site_options()
@handle_errors
def list_command(site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool) -> None:
    """List the assets stored at the site."""
    with site_client(site_url, cert, tls_key, ca) as site:
        records = site.list_assets()
    if as_json:
        echo_json({"assets": [_record_json(record) for record in records]})
        return
    if not records:
        click.echo("no assets")
    for record in records:
        click.echo(_describe(record))


@assets_group.command("show")
@click.argument("asset_id")
@site_options()
@handle_errors
def show_command(
    asset_id: str, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Show one asset: kind, image digest and size, metadata."""
    with site_client(site_url, cert, tls_key, ca) as site:
        record = site.get_asset(_asset_id(asset_id))
    if as_json:
        echo_json(_record_json(record))
        return
    asset = record.asset
    click.echo(f"id:       {asset.id}")
    click.echo(f"kind:     {asset.kind.value}")
    click.echo(f"image:    {'sha256:' + asset.image_digest if asset.image_digest else 'none'}")
    click.echo(f"size:     {_size(record.size)}")
    click.echo(f"stored:   {record.created_at.isoformat()}")
    click.echo(f"metadata: {json.dumps(dict(asset.metadata), sort_keys=True)}")


@assets_group.command("download")
@click.argument("asset_id")
@click.option(
    "--out",
    "out_path",
    type=_FILE,
    required=True,
    help="Where to write the image (refused if it exists, unless --overwrite).",
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@site_options()
@handle_errors
def download_command(
    asset_id: str,
    out_path: Path,
    overwrite: bool,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Download an asset's image to --out (atomically, digest verified, resumable)."""
    identifier = _asset_id(asset_id)
    if out_path.exists() and not overwrite:
        raise Conflict(f"{out_path} exists; give --overwrite to replace it")
    with (
        site_client(site_url, cert, tls_key, ca) as site,
        _progress_bar(_show_progress(as_json)) as bar,
    ):
        info = site.download_image(identifier, out_path, progress=bar)
    if as_json:
        echo_json(
            {"asset": asset_id, "path": str(out_path), "digest": info.digest, "size": info.size}
        )
    else:
        click.echo(f"wrote {out_path} ({_size(info.size)}, sha256:{info.digest})")


@assets_group.command("delete")
@click.argument("asset_id")
@site_options()
@handle_errors
def delete_command(
    asset_id: str, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """Delete an asset from the site (and its image, unless another asset uses it)."""
    with site_client(site_url, cert, tls_key, ca) as site:
        record = site.delete_asset(_asset_id(asset_id))
    if as_json:
        echo_json(_record_json(record))
    else:
        click.echo(f"deleted {_describe(record)}")
