"""The bundled scenarios, as a library: the client scripts and `mahiru demo` use it."""
