"""Mahiru: a federated, policy-driven data exchange."""

__version__ = "0.1.0"
