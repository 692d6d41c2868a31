"""tocsin's API server: the one process that touches the database."""

from __future__ import annotations

__all__ = ("__version__",)

__version__ = "0.1.0"
