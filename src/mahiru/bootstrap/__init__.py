"""The composition root: where a site's and the registry's object graphs are built.

Entry points (the command line, the ASGI factories, tests) build a graph here
and hand it to the HTTP layer (`mahiru.api.site_app`, `mahiru.api.registry_app`),
which only serves it. Nothing below the entry points imports this package.
"""

from mahiru.bootstrap.registry import Registry, RegistryOverrides, build_registry
from mahiru.bootstrap.site import (
    OutgoingOverrides,
    Site,
    SiteEdge,
    SiteOverrides,
    SiteProcess,
    SiteStorage,
    build_site,
)

__all__ = [
    "OutgoingOverrides",
    "Registry",
    "RegistryOverrides",
    "Site",
    "SiteEdge",
    "SiteOverrides",
    "SiteProcess",
    "SiteStorage",
    "build_registry",
    "build_site",
]
