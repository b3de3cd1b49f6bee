"""Fixtures of the job path tests: a started in-process network and the compute-to-data scenario."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_scenario import (
    Hang,
    Scenario,
    compute_to_data,
    failing,
    minmax,
    too_much,
    too_slow,
)
from tests.support.fake_sites import FakeNetwork


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The scenario set up once (sites stopped); each test runs on a copy of it."""
    net = FakeNetwork(tmp_path_factory.mktemp("template") / "net")
    net.start()
    scenario = compute_to_data(
        net,
        {"minmax": minmax, "fail": failing, "big": too_much, "slow": too_slow, "hang": Hang()},
    )
    net.stop()
    return scenario


@pytest.fixture
def hang() -> Hang:
    """The program of the `hang` compute asset, for this test."""
    return Hang()


@pytest.fixture
def scenario(template: Scenario, hang: Hang, tmp_path: Path) -> Iterator[Scenario]:
    """Compute-to-data on three started sites: the input at site2 (party2); the compute
    assets (minmax and the probes) and the output base at site1 (party1); party3 has
    nothing and no rule names it."""
    net = template.net.copy(tmp_path / "net")
    net.programs.compute("hang", hang)
    net.start(replicate=False)  # copied replicated
    try:
        yield template.on(net)
    finally:
        net.stop()
