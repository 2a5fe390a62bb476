"""Sample payloads in the shape the adapters' source systems emit (tests/data/adapters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "adapters"
LITELLM_CALLS: list[dict[str, Any]] = json.loads((DATA / "litellm_calls.json").read_text())
#: The calls the callback turns into events (the others are skipped or invalid).
LITELLM_COUNTED = [c for c in LITELLM_CALLS if "not counted" not in c["what"]]
