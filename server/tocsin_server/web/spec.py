"""The hand-written contract files, as shipped: the published schema of each version."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml


def spec_dir() -> Path:
    """openapi/ in a source checkout; the copy packed into the wheel otherwise."""
    package = Path(__file__).resolve().parents[1]  # tocsin_server/
    for candidate in (package.parents[1] / "openapi", package / "_openapi"):
        if (candidate / "versions").is_dir():
            return candidate
    msg = "the openapi/ contract files are missing from this installation"
    raise FileNotFoundError(msg)


def spec_path(version: str) -> Path:
    return spec_dir() / "versions" / f"{version}.yaml"


def spec_versions() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (spec_dir() / "versions").glob("*.yaml")))


@functools.cache
def load_spec(version: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(spec_path(version).read_text())
    return loaded


@functools.cache
def spec_json(version: str) -> bytes:
    return json.dumps(load_spec(version), indent=2).encode()
