"""The services: the registry and the site, built on the pure core and the adapters.

Import the modules themselves (`mahiru.services.registry`, ...); this package
imports nothing. Nothing below the services (storage, runtime, client, pki)
imports them.
"""
