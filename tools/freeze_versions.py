"""Record the sha256 of every released spec file in openapi/released.sha256 (run once per release).

A released version never changes: CI compares each file with its recorded hash. Adding a new version
appends a line; editing a recorded one fails the contract tests.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "openapi" / "released.sha256"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(versions: list[str]) -> None:
    recorded = (
        dict(line.split()[::-1] for line in MANIFEST.read_text().splitlines() if line.strip())
        if MANIFEST.exists()
        else {}
    )
    for version in versions:
        name = f"versions/{version}.yaml"
        if name in recorded:
            sys.exit(f"{name} is already released; a released version never changes")
        recorded[name] = digest(ROOT / "openapi" / name)
    MANIFEST.write_text("".join(f"{sha}  {name}\n" for name, sha in sorted(recorded.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
