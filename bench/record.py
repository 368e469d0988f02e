"""What every benchmark shares: the machine it ran on, percentiles, and its results file.

Each benchmark prints its figures and writes `bench/results/<name>.json`:

    {"name", "machine", "date", "size", "figures": {...}, "baseline": {...}, "ratio": number}

`ratio` is the headline: how many times better than the baseline measured in the same run
(baseline time over ours for latencies, our rate over the baseline's for rates).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"

if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the project, on the path
    sys.path.insert(0, str(ROOT))


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: `--full` for the sizes the targets name."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--full", action="store_true", help="the full sizes the targets name (slow)")
    p.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for <name>.json (bench/results)"
    )
    return p


def machine() -> str:
    """One line: CPU model and cores, memory, and the GPU when torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores"]
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        parts.append(f"{pages / 2**30:.0f} GiB")
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    except ImportError:
        pass
    return "; ".join(parts)


def percentiles(samples: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict:
    """{"p50": ..., "p95": ..., "p99": ...} of `samples` (same unit)."""
    values = np.asarray(samples, dtype=float)
    return {f"p{p}": float(np.percentile(values, p)) for p in points}


def write(
    name: str,
    *,
    size: dict[str, Any],
    figures: dict[str, Any],
    baseline: dict[str, Any],
    ratio: float,
    out: Path = RESULTS,
) -> Path:
    """Print the result and write it to `out/<name>.json`."""
    result = {
        "name": name,
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "size": size,
        "figures": figures,
        "baseline": baseline,
        "ratio": round(float(ratio), 3),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"{name}: {ratio:.2f}x the baseline; written to {path}")
    return path
