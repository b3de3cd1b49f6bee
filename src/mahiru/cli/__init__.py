"""The `mahiru` command line."""
