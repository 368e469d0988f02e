"""Set-up times a new user meets: a first and a second `make demo`, and `make bundle`.

In a fresh `git clone` of this checkout's HEAD (uncommitted changes are not in it):

1. `make demo` until it prints the URL: installs .venv (pip's cache on this machine is warm,
   a first install on a new machine also downloads), migrates, trains the default bundle,
   imports the demo items and waits for the first predictions. Target: 15 minutes.
2. `make demo` again until the URL: everything is reused. Target: 1 minute.
3. `make bundle` on its own, the bundle removed first. Target: 10 minutes.

Each demo is stopped with Ctrl-C (SIGINT) once the URL is printed. The baseline is each
target: `ratio` is the smallest of target / measured (above 1: every target met).

    python bench/setup.py [--keep]
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

TARGETS_S = {"demo_first_s": 15 * 60, "demo_second_s": 60, "bundle_s": 10 * 60}
ANNOUNCED = "The demo is running:"


def demo_until_url(clone: Path, timeout: float = 30 * 60) -> tuple[float, dict[str, float]]:
    """Seconds from `make demo` to the printed URL, and seconds at which each step began."""
    env = {**os.environ, "DEMO_PORT": str(record.free_port()), "PYTHONUNBUFFERED": "1"}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)  # the embedded default, as a new user gets it
    start = time.perf_counter()
    process = subprocess.Popen(
        ["make", "demo"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    steps: dict[str, float] = {}
    try:
        assert process.stdout is not None
        for line in process.stdout:
            elapsed = time.perf_counter() - start
            print(f"  [{elapsed:7.1f} s] {line.rstrip()}", flush=True)
            if line.startswith("== "):
                steps[line[3:].strip()] = round(elapsed, 1)
            if ANNOUNCED in line:
                return elapsed, steps
            if elapsed > timeout:
                break
        raise SystemExit(f"`make demo` stopped without printing the URL (exit {process.poll()})")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=sys.stdout, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def main() -> None:
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="moderation-setup-"))
    clone = scratch / "clone"
    try:
        subprocess.run(["git", "clone", "--quiet", str(record.ROOT), str(clone)], check=True)
        print("first make demo (fresh clone)", flush=True)
        first, first_steps = demo_until_url(clone)
        print("second make demo", flush=True)
        second, second_steps = demo_until_url(clone)
        print("make bundle (bundle removed first)", flush=True)
        shutil.rmtree(clone / "var" / "bundles" / "default")
        bundle = timed(["make", "bundle"], clone)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    figures = {
        "demo_first_s": round(first, 1),
        "demo_second_s": round(second, 1),
        "bundle_s": round(bundle, 1),
        "demo_first_steps_started_at_s": first_steps,
        "demo_second_steps_started_at_s": second_steps,
    }
    ratio = min(TARGETS_S[k] / figures[k] for k in TARGETS_S)
    record.write(
        "setup",
        size={"clone": "git clone of HEAD", "pip_cache": "warm"},
        figures=figures,
        baseline={"targets_s": TARGETS_S},
        ratio=ratio,
        out=args.out,
    )


if __name__ == "__main__":
    main()
