"""Where the browser tests save their screenshots.

Each browser test photographs its page. With UPDATE_SCREENSHOTS=1 (`make screenshots`) the
pictures replace the README's under docs/; otherwise they go to the test's scratch folder, so
that running the suite leaves the checkout as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def screenshot_path(name: str, scratch: Path) -> Path:
    folder = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
