"""``tocsin_client.serde`` is the shared leaf's serde (``tocsin_wire.serde``), named here for trigger authors."""

from tocsin_wire.serde import *  # noqa: F403
from tocsin_wire.serde import __all__ as __all__  # noqa: PLC0414 - re-exported, as mypy --strict wants it spelled
