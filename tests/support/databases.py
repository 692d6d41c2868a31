"""Moved to ``harness.databases`` (shared with the benchmarks); kept until every test imports it from there."""

from harness.databases import POSTGRES_ADMIN_DSN, empty_database, postgres_database, sqlite_database

__all__ = ["POSTGRES_ADMIN_DSN", "empty_database", "postgres_database", "sqlite_database"]
