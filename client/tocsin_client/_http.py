"""The one module that names the HTTP library.

httpx has had no release since December 2024 and the ecosystem is moving to the ``httpx2`` fork
(same API), so switching is a change to this import only.
"""

from __future__ import annotations

import httpx

__all__ = ["httpx"]
