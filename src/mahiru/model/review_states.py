"""Where a review of a result's release is (its own module: `mahiru reviews --help` lists
the states without loading the rest of the model)."""

from __future__ import annotations

from enum import Enum


class ReviewState(Enum):
    """Where a review is: waiting for a reviewer, or decided one way for good."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def decided(self) -> bool:
        """Whether a reviewer decided it (nothing changes it after)."""
        return self is not ReviewState.PENDING
