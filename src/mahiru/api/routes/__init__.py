"""The HTTP routes of the two apps, one module per resource, each with a module-level `router`.

Routes take their collaborators as FastAPI dependencies, which read them from
the app's state (`site.dependencies`, `registry.dependencies`); the apps put
them there and mount the routers (`site.mount_site_routes`,
`registry.mount_registry_routes`).
"""
