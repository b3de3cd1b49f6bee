"""Request ids made by the access log: unique, 32 hex digits, and another prefix in a forked
process."""

from __future__ import annotations

import os
import string

import pytest

from mahiru.api.middleware import RequestIds


def test_ids_are_unique_and_look_like_a_uuids_hex() -> None:
    """10,000 ids from one maker are all different, each 32 lowercase hex digits."""
    ids = RequestIds()
    made = [ids.new() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(len(i) == 32 and set(i) <= set(string.hexdigits.lower()) for i in made)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_makes_ids_of_its_own() -> None:
    """A maker used before a fork gives the child a new prefix, so a worker forked from
    another never repeats its ids."""
    ids = RequestIds()
    parent = ids.new()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, ids.new().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    made_in_child = os.read(read, 64).decode()
    os.close(read)
    assert made_in_child[:16] != parent[:16]
    assert ids.new()[:16] == parent[:16]
