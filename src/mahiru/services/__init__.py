"""The services: the registry and the site, built on the pure core and the adapters.

Import the modules themselves (`mahiru.services.registry`, ...); this package
imports nothing, so that the pure `registrations` module can be used by the
HTTP clients without pulling in any service.
"""
