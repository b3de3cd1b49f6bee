"""HTTP out: typed clients for the registry and the site APIs."""
