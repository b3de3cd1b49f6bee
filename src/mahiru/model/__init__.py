"""The domain model: identifiers, assets, workflows, jobs and plans (pure, no I/O)."""
