"""Service configuration: files, environment overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mahiru.config import (
    CallerLimits,
    RegistryConfig,
    SiteConfig,
    load_caller_limits,
    load_config,
)
from mahiru.errors import InvalidInput

REGISTRY_YAML = """
tls: {network_ca: certs/ca.crt, cert: certs/registry.crt, key: certs/registry.key}
database_url: sqlite:///registry.db
listen: {port: 9443}
"""


def test_yaml_file_with_relative_paths_resolved_against_its_folder(tmp_path: Path) -> None:
    """Relative paths in the file are taken relative to the file, not the working dir."""
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY_YAML)
    config = load_config(RegistryConfig, path, environ={})
    assert config.tls.network_ca == tmp_path / "certs" / "ca.crt"
    assert config.listen.port == 9443
    assert config.listen.host == "127.0.0.1"
    assert config.database_url == f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.mark.parametrize(
    "url", ["sqlite:////abs/r.db", "sqlite:///:memory:", "postgresql+psycopg://u:p@h/db"]
)
def test_absolute_memory_and_server_database_urls_are_kept(tmp_path: Path, url: str) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY_YAML.replace("sqlite:///registry.db", f'"{url}"'))
    assert load_config(RegistryConfig, path, environ={}).database_url == url


def test_toml_file(tmp_path: Path) -> None:
    """A file ending in .toml is read as TOML."""
    path = tmp_path / "registry.toml"
    path.write_text(
        'database_url = "sqlite:///r.db"\n[tls]\nnetwork_ca = "/ca.crt"\n[listen]\nport = 1\n'
    )
    assert load_config(RegistryConfig, path, environ={}).listen.port == 1


def test_environment_overrides_nested_and_top_level_values(tmp_path: Path) -> None:
    """MAHIRU_CONFIG__ variables override file values; other MAHIRU_ variables are ignored."""
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY_YAML)
    environ = {
        "MAHIRU_CONFIG__DATABASE_URL": "postgresql+psycopg://u:p@h/db",
        "MAHIRU_CONFIG__LISTEN__PORT": "7000",
        "MAHIRU_CERT": "/somewhere/else.crt",
        "MAHIRU_REGISTRY_URL": "https://elsewhere",
    }
    config = load_config(RegistryConfig, path, environ=environ)
    assert config.database_url == "postgresql+psycopg://u:p@h/db"
    assert config.listen.port == 7000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tls: {network_ca: ca.crt}\n", "database_url: Field required"),
        (REGISTRY_YAML + "colour: blue\n", "colour: Extra inputs are not permitted"),
        (REGISTRY_YAML.replace("9443", "99999"), "listen.port"),
        ("tls: [unclosed\n", "not valid YAML"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_invalid_files_name_the_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    """Every problem is an InvalidInput naming the file and what is wrong."""
    path = tmp_path / "registry.yaml"
    path.write_text(content)
    with pytest.raises(InvalidInput) as raised:
        load_config(RegistryConfig, path, environ={})
    assert str(path) in raised.value.message
    assert message in raised.value.message


def test_site_ids_are_checked(tmp_path: Path) -> None:
    """A site config with a malformed site id is refused with the identifier named."""
    path = tmp_path / "site.yaml"
    path.write_text(
        "site_id: party:a:b\nowner: party:a:b\ntls: {network_ca: ca.crt}\nuser_ca: u.crt\n"
        "registry_url: https://r\ndatabase_url: sqlite:///s.db\ndata_dir: data\n"
    )
    with pytest.raises(InvalidInput, match="'party:a:b' is not a site identifier"):
        load_config(SiteConfig, path, environ={})


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is named."""
    with pytest.raises(InvalidInput, match="cannot read the configuration"):
        load_config(RegistryConfig, tmp_path / "nope.yaml", environ={})


def test_the_gunicorn_worker_reads_the_caller_limits_of_either_service(tmp_path: Path) -> None:
    """`load_caller_limits` reads `callers` from a site's or the registry's file (defaults
    when absent), with environment overrides, and names the file and field when invalid."""
    site = tmp_path / "site.yaml"
    site.write_text("site_id: x\ncallers:\n  head_timeout_seconds: 3\n")
    assert load_caller_limits(site, {}).head_timeout_seconds == 3
    registry = tmp_path / "registry.yaml"
    registry.write_text("database_url: sqlite://\n")
    assert load_caller_limits(registry, {}) == CallerLimits()
    env = {"MAHIRU_CONFIG__CALLERS__MAX_CONNECTIONS": "7"}
    assert load_caller_limits(registry, env).max_connections == 7
    site.write_text("callers:\n  body_idle_timeout_seconds: -1\n")
    with pytest.raises(InvalidInput, match=r"site.yaml.*callers.body_idle_timeout_seconds"):
        load_caller_limits(site, {})
