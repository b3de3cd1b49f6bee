"""Typed configuration of the registry and sites, from a TOML or YAML file plus environment.

Environment variables override file values: `MAHIRU_CONFIG__<KEY>` for a
top-level key and `MAHIRU_CONFIG__<SECTION>__<KEY>` for a nested one (for
example `MAHIRU_CONFIG__DATABASE_URL`, `MAHIRU_CONFIG__TLS__CERT`). The
distinct prefix keeps them apart from the CLI's own variables (MAHIRU_CERT,
MAHIRU_REGISTRY_URL, ...). Relative paths are resolved
against the config file's folder. Errors name the file and the field.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import PartyId, SiteId

C = TypeVar("C", bound="_Strict")

#: Prefix of the environment variables that override configuration values.
ENV_PREFIX = "MAHIRU_CONFIG__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Strict):
    """Where the app listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8443, ge=0, le=65535)


class TlsConfig(_Strict):
    """The app's own TLS certificate and the network CA.

    Without `cert`/`key` the app serves plain HTTP and must sit behind a
    trusted proxy (see `trusted_proxies`).
    """

    cert: Path | None = None
    key: Path | None = None
    network_ca: Path
    trusted_proxies: list[str] = Field(default_factory=list)


class CallerLimits(_Strict):
    """How much of a service one caller may hold, and for how long (docs/security.md).

    A request's head (and, when the service serves TLS itself, the handshake
    before it) must arrive within `head_timeout_seconds`. A body may pause
    at most `body_idle_timeout_seconds` between two chunks and must keep up
    `body_min_bytes_per_second` on average once that first grace has passed,
    so an honest large upload of any size passes while a trickle is cut.
    """

    head_timeout_seconds: float = Field(default=10.0, gt=0)
    body_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    body_min_bytes_per_second: int = Field(default=1024, ge=0)
    #: Open connections beyond this are closed as soon as they arrive.
    max_connections: int = Field(default=1000, gt=0)
    #: Requests handled at once; beyond this the answer is 503 with Retry-After.
    max_concurrent_requests: int = Field(default=200, gt=0)
    #: Refused requests per identity: a bucket this deep, refilled at this rate.
    refused_burst: int = Field(default=20, gt=0)
    refused_per_second: float = Field(default=1.0, gt=0)
    #: Requests per calling site on the external API (a site: none).
    external_burst: int = Field(default=200, gt=0)
    external_per_second: float = Field(default=50.0, gt=0)
    #: Identities tracked by each rate limit (the least recent are forgotten).
    tracked_identities: int = Field(default=10_000, gt=0)
    #: Refusals of one identity for one reason fold into one record per interval.
    refusal_audit_interval_seconds: float = Field(default=60.0, gt=0)


class RegistryConfig(_Strict):
    """Configuration of `mahiru serve registry`."""

    listen: ListenConfig = ListenConfig()
    tls: TlsConfig
    database_url: str
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    #: Certificate identities (e.g. a party or site id) that may read /metrics.
    metrics_scrapers: list[str] = Field(default_factory=list)
    callers: CallerLimits = CallerLimits()


class ContainerLimits(_Strict):
    """Limits applied to every step container at a site."""

    cpus: float = Field(default=1.0, gt=0)
    memory_mb: int = Field(default=1024, gt=0)
    timeout_seconds: int = Field(default=600, gt=0)
    max_output_mb: int = Field(default=1024, gt=0)


class DockerRunnerConfig(_Strict):
    """Steps run as containers on the site's own container engine (the default)."""

    kind: Literal["docker"] = "docker"


#: What Slurm accepts as a partition or account name.
_SLURM_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class SlurmRunnerConfig(_Strict):
    """Steps run as Slurm batch jobs, each running the step's container on a node
    (docs/slurm.md).

    `shared_dir` is a folder this site alone uses on a file system every node
    mounts at the same path: the steps' inputs, outputs, job scripts and logs go
    there. `engine` is the container engine's command on the nodes; `slurm_conf`
    points Slurm's commands at a cluster other than the machine's default.
    """

    kind: Literal["slurm"]
    partition: str
    shared_dir: Path
    engine: Literal["docker", "podman"] = "docker"
    account: str | None = None
    slurm_conf: Path | None = None
    #: How long a cancelled step's job may take to end (its script removes the container).
    cancel_wait_seconds: float = Field(default=60.0, gt=0)

    @field_validator("partition", "account")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        if value is not None and not _SLURM_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Slurm name: use letters, digits, '_', '.', '-'")
        return value


#: Where a site's steps run: `runner: {kind: docker}` or `runner: {kind: slurm, ...}`.
RunnerConfig = Annotated[DockerRunnerConfig | SlurmRunnerConfig, Field(discriminator="kind")]


class SiteConfig(_Strict):
    """Configuration of `mahiru serve site`."""

    site_id: str
    owner: str
    listen: ListenConfig = ListenConfig()
    tls: TlsConfig
    user_ca: Path
    registry_url: str
    internal_url: str | None = None
    external_url: str | None = None
    database_url: str
    data_dir: Path
    has_store: bool = True
    has_runner: bool = True
    replication_interval_seconds: float = Field(default=10.0, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    #: How long a step keeps retrying while a peer (or the engine) is unavailable.
    peer_retry_deadline_seconds: float = Field(default=600.0, gt=0)
    #: How long the log kept of each finished step stays (then it is removed), in days.
    step_log_retention_days: float = Field(default=30.0, gt=0)
    containers: ContainerLimits = ContainerLimits()
    runner: RunnerConfig = DockerRunnerConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    #: Asset images are streamed, so they are limited separately from other bodies.
    max_image_bytes: int = Field(default=64 * 1024**3, gt=0)
    #: User names (besides admins) whose certificates may read /internal/metrics.
    metrics_scrapers: list[str] = Field(default_factory=list)
    callers: CallerLimits = CallerLimits()

    @field_validator("runner", mode="before")
    @classmethod
    def _runner_kind(cls, value: Any) -> Any:
        if isinstance(value, dict) and "kind" not in value:
            raise ValueError("say which runner: kind: docker, or kind: slurm with its settings")
        return value

    @field_validator("site_id")
    @classmethod
    def _site_id(cls, value: str) -> str:
        SiteId.parse(value)
        return value

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        PartyId.parse(value)
        return value

    @property
    def site(self) -> SiteId:
        """The site id as a value."""
        return SiteId.parse(self.site_id)

    @property
    def owner_party(self) -> PartyId:
        """The owner party id as a value."""
        return PartyId.parse(self.owner)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the configuration: {error.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise InvalidInput(
            f"{path}: not valid {path.suffix[1:].upper() or 'YAML'}: {error}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: the configuration must be a mapping")
    return data


#: The variable naming a service's configuration file to the service images (mahiru.asgi).
CONFIG_FILE_ENV = "MAHIRU_CONFIG_FILE"


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for key, value in environ.items():
        if _one_underscore(key):
            # MAHIRU_CONFIG_DATABASE_URL would silently do nothing: say what was meant.
            fixed = ENV_PREFIX + key[len(ENV_PREFIX) - 1 :]
            raise InvalidInput(
                f"environment variable {key}: a configuration value is overridden by"
                f" {ENV_PREFIX}<KEY>, with two underscores: did you mean {fixed}?"
                f" ({CONFIG_FILE_ENV} names the configuration file of the service images,"
                " MAHIRU_CONFIG the command line's profiles file)"
            )
        if not key.startswith(ENV_PREFIX):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        target = data
        for part in path[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise InvalidInput(f"environment variable {key}: {part} is not a section")
            target = nested
        target[path[-1]] = yaml.safe_load(value) if value else value


def _one_underscore(key: str) -> bool:
    """Whether `key` looks like a MAHIRU_CONFIG__ override written with one underscore."""
    single = ENV_PREFIX[:-1]
    return (
        key.startswith(single)
        and not key.startswith(ENV_PREFIX)
        and key != CONFIG_FILE_ENV
        and len(key) > len(single)
    )


#: A SQLite URL with a relative path (`sqlite:///name.db`); four slashes make it absolute.
_RELATIVE_SQLITE = "sqlite:///"


def _resolve_paths(model: BaseModel, base: Path) -> dict[str, Any]:
    """The configuration with relative paths made absolute from the file's folder.

    That includes a SQLite `database_url` with a relative path, so that
    `sqlite:///site1.db` means the file next to the configuration wherever
    the service is started from.
    """
    data = model.model_dump()
    url = data.get("database_url")
    if isinstance(url, str) and url.startswith(_RELATIVE_SQLITE):
        path = url[len(_RELATIVE_SQLITE) :]
        if path and not path.startswith("/") and not path.startswith(":memory:"):
            data["database_url"] = _RELATIVE_SQLITE + str((base / path).resolve())

    def fix(value: Any) -> Any:
        if isinstance(value, Path) and not value.is_absolute():
            return (base / value).resolve()
        if isinstance(value, dict):
            return {k: fix(v) for k, v in value.items()}
        return value

    return {k: fix(v) for k, v in data.items()}


def load_caller_limits(path: Path, environ: Mapping[str, str] | None = None) -> CallerLimits:
    """The `callers` section of the registry's or a site's configuration file (defaults if
    absent), with environment overrides; the rest of the file is checked when it is loaded."""
    data = _read(path)
    _apply_environment(data, os.environ if environ is None else environ)
    try:
        return CallerLimits.model_validate(data.get("callers") or {})
    except ValidationError as error:
        problems = [
            f"callers.{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        ]
        raise InvalidInput(
            f"{path}: invalid configuration: {'; '.join(problems)}", problems
        ) from None


def load_config(cls: type[C], path: Path, environ: Mapping[str, str] | None = None) -> C:
    """Load and validate a configuration file of class `cls`, with environment overrides."""
    data = _read(path)
    _apply_environment(data, os.environ if environ is None else environ)
    try:
        parsed = cls.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in problem['loc']) or '(top)'}: {problem['msg']}"
            for problem in error.errors()
        ]
        raise InvalidInput(
            f"{path}: invalid configuration: {'; '.join(problems)}", problems
        ) from None
    except InvalidInput as error:
        raise InvalidInput(f"{path}: invalid configuration: {error.message}") from None
    return cls.model_validate(_resolve_paths(parsed, path.parent.resolve()))
