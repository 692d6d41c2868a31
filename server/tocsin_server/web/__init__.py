"""The HTTP plumbing under the route handlers: what every operation shares and none of them spells out.

Bearer auth and the token authority, dated API versions, the one map from errors to problem+json, the spec
files served as written, the strict JSON body decoder, the Allow header, and the URL, header and JSON-depth
limits. Route modules (``tocsin_server.api``) use these; services and the database layer never do.
"""
