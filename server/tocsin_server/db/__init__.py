"""Persistence: ORM models, engines and migrations."""
