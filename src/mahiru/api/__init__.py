"""HTTP in: the registry and site apps, their authentication and error mapping."""
