"""Real processes and databases for the test suite and the benchmarks alike: a live ``tocsin api-server`` and
migrated SQLite and PostgreSQL databases. Both may import this; benchmarks never import the tests."""
