"""Policy: signed rules, their store, and the engine that decides (DESIGN §4-5)."""
