"""Route handlers: thin adapters between HTTP and the domain services."""
