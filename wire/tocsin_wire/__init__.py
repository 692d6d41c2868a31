"""What the API server and its clients share, and nothing more: the serde of trigger kwargs and event payloads
with its allowlist, the wire's header names and the problem-type URNs. Depends on msgspec alone; imports neither
``tocsin_server`` nor ``tocsin_client``."""
