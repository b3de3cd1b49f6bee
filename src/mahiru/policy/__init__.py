"""Policy: signed rules, their store, and the engine that decides (reference: Rules-5)."""
