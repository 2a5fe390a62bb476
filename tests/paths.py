"""Where tests find the repository's files and the research folder beside it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
README = ROOT / "README.md"
DEPLOY = ROOT / "deploy"
#: The research folder next to the repository: the weekly figures the data was built from.
SHARED = ROOT.parent / "shared"
