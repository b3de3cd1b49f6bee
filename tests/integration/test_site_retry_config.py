"""How long a site's steps retry unavailable peers is read from its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.support.sites import Pki, SiteServer

from mahiru.api.site_app import create_site_app
from mahiru.bootstrap import SiteOverrides, build_site
from mahiru.config import SiteConfig, load_config
from mahiru.errors import InvalidInput
from mahiru.services.jobs.execution import UNAVAILABLE_DEADLINE
from mahiru.storage import create_database

pytestmark = pytest.mark.integration


def _site(tmp_path: Path) -> SiteServer:
    certs = Pki(tmp_path / "certs")
    return SiteServer(
        certs,
        certs.party("p1"),
        "site",
        database_url=f"sqlite:///{tmp_path / 'site.db'}",
        data_dir=tmp_path / "data",
        registry_url="https://registry.invalid",
    )


def _deadline(config: SiteConfig) -> float:
    database = create_database(config.database_url)
    try:
        site = build_site(config, overrides=SiteOverrides(database=database))
        app = create_site_app(site, start_replication=False, start_jobs=False)
        deadline: float = app.state.jobs.loops.worker.execution.unavailable_deadline
    finally:
        database.close()
    return deadline


def test_steps_retry_unavailable_peers_for_600_s_by_default(tmp_path: Path) -> None:
    """Without `peer_retry_deadline_seconds` a step gives up after 600 s."""
    config = _site(tmp_path).config
    assert config.peer_retry_deadline_seconds == UNAVAILABLE_DEADLINE == 600.0
    assert _deadline(config) == 600.0


def test_the_configured_peer_retry_deadline_reaches_the_step_execution(tmp_path: Path) -> None:
    """`peer_retry_deadline_seconds` in the site's file is the steps' deadline."""
    data = _site(tmp_path).config.model_dump(mode="json")
    data["peer_retry_deadline_seconds"] = 42
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    assert _deadline(load_config(SiteConfig, path)) == 42.0


def test_a_peer_retry_deadline_that_is_not_positive_is_refused(tmp_path: Path) -> None:
    """A deadline of 0 s would fail every step at the first unavailable peer: refused."""
    data = _site(tmp_path).config.model_dump(mode="json")
    data["peer_retry_deadline_seconds"] = 0
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InvalidInput, match="peer_retry_deadline_seconds"):
        load_config(SiteConfig, path)
