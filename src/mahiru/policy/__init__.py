"""Policy: signed rules, their store, and the engine that decides (see docs/reference.md)."""
