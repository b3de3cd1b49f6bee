"""Change feeds answered from kept bytes: the same answer while nothing changed, the new
one as soon as something did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.db import sqlite_urls
from tests.support.sites import Network, may_access, network

from mahiru.api.answers import EncodedAnswers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """p1's and p2's sites, registered and replicated."""
    root: Path = tmp_path_factory.mktemp("kept")
    with network(root, sqlite_urls(root), ("p1", "p2")) as n:
        n.replicate_all()
        yield n


def test_a_rule_added_is_in_the_next_answer_of_the_rule_feed(net: Network) -> None:
    """Asked twice, the feed answers alike; after a rule is added, it answers with it."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    url = f"{site1.external_url}/rules/changes"
    with httpx.Client(verify=site2.identity.ssl_context(), timeout=30) as peer:
        first = peer.get(url, params={"since": 0})
        again = peer.get(url, params={"since": 0})
        added = net.parties["p1"].sign(may_access(site2.id, "asset:p1.org:kept:p1.org:site"))
        with site1.admin() as admin:
            admin.add_rule(added)
        after = peer.get(url, params={"since": 0})
    assert first.status_code == again.status_code == after.status_code == 200
    assert first.content == again.content
    assert after.json()["version"] > first.json()["version"]
    assert added.rule_id in {change["rule_id"] for change in after.json()["changes"]}
    assert added.rule_id not in {change["rule_id"] for change in first.json()["changes"]}


def test_an_answer_is_given_only_at_the_version_it_was_made_at() -> None:
    """A kept answer is not given for another version, and the least recently given goes
    first when too many are kept."""
    answers = EncodedAnswers(kept=2)
    answers.put("a", 3, b"a3")
    answers.put("b", 3, b"b3")
    assert answers.get("a", 3) == b"a3"
    assert answers.get("a", 4) is None
    answers.put("c", 3, b"c3")  # "b" was given least recently
    assert answers.get("b", 3) is None
    assert (answers.get("a", 3), answers.get("c", 3)) == (b"a3", b"c3")
