"""Moved to ``harness.live_server`` (shared with the benchmarks); kept until every test imports it from there."""

from harness.live_server import LiveServer, free_port, live_server, wait_until_healthy

__all__ = ["LiveServer", "free_port", "live_server", "wait_until_healthy"]
