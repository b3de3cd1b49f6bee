"""`mahiru demo`: a registry and two sites on loopback running a bundled scenario."""
