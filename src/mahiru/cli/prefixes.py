"""Ids given by a unique prefix, for the commands: the model's resolver (`model/prefixes.py`),
which the repositories that look ids up by prefix share."""

from mahiru.model.prefixes import resolve_prefix

__all__ = ["resolve_prefix"]
