"""`mahiru blobs verify`: an operator's check of every image a site stores.

    mahiru blobs verify --config site.yaml [--json]

Reads the site's database and blob store directly (the site may be running),
hashes every stored image and compares it with the digest its asset record
names. Damaged images are set aside (the site then refetches or recomputes
what it needs, and never serves them); exit 1 if anything is damaged or
missing, 0 if all is sound.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mahiru.cli.connection import echo_json
from mahiru.cli.errors import handle_errors
from mahiru.cli.serve import load_service_config


@click.group("blobs")
def blobs_group() -> None:
    """Operator checks of a site's stored images."""


@blobs_group.command("verify")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The site's configuration file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@handle_errors
def verify_command(config_path: Path, as_json: bool) -> None:
    """Check every stored image against its digest; list damaged and missing ones."""
    # Imported here, not above: listing or asking for help needs no database.
    from mahiru.config import SiteConfig
    from mahiru.services.site.assets import AssetStore
    from mahiru.storage import AssetRepository, BlobStore, create_database

    config = load_service_config(SiteConfig, config_path)
    database = create_database(config.database_url)
    try:
        store = AssetStore(
            database,
            AssetRepository(database),
            BlobStore(config.data_dir / "blobs"),
            site=config.site,
            owner=config.owner_party,
            max_image_bytes=config.max_image_bytes,
        )
        audit = store.audit_images()
    finally:
        database.close()
    if as_json:
        echo_json({"checked": audit.checked, "damaged": audit.damaged, "missing": audit.missing})
    else:
        click.echo(f"checked {audit.checked} images")
        for asset in audit.damaged:
            click.echo(f"damaged (set aside): {asset}")
        for asset in audit.missing:
            click.echo(f"missing: {asset}")
        if audit.sound:
            click.echo("all images are sound")
    if not audit.sound:
        sys.exit(1)
