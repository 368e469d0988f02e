"""What every benchmark shares: the machine it ran on, percentiles, its results file, and the
scratch databases and server environments the benchmarks start.

Each benchmark prints its figures and writes `bench/results/<name>.json` (with `--full`,
`bench/results/full/<name>.json`):

    {"name", "machine", "date", "size", "figures": {...}, "baseline": {...}, "ratio": number}

`ratio` is the headline: how many times better than the baseline measured in the same run
(baseline time over ours for latencies, our rate over the baseline's for rates).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"

if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/, not the project, on the path
    sys.path.insert(0, str(ROOT))


class _Parser(argparse.ArgumentParser):
    def parse_args(self, *args: Any, **kwargs: Any) -> argparse.Namespace:
        parsed = super().parse_args(*args, **kwargs)
        if parsed.out is None:  # the full sizes never overwrite the default sizes' results
            parsed.out = RESULTS / "full" if parsed.full else RESULTS
        return parsed


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes: `--full` for the sizes the targets name, `--out`."""
    p = _Parser(description=description)
    p.add_argument("--full", action="store_true", help="the full sizes the targets name (slow)")
    p.add_argument(
        "--out",
        type=Path,
        help="folder for <name>.json (bench/results; with --full bench/results/full)",
    )
    return p


def relative(path: Path) -> str:
    """A path as the results name it: from the project's root where it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


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


# -- databases and servers the benchmarks start ------------------------------------------------

POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def database(name: str, server: str = POSTGRES) -> Iterator[str]:
    """A fresh database on the server, dropped at the end; yields its URL."""
    import psycopg

    base = server.rsplit("/", 1)[0]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        if "django.db" in sys.modules:  # this process's own connections to it, if any
            from django.db import connections

            connections.close_all()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def environment(database_url: str, scratch: Path, broker_url: str = "memory://") -> dict:
    """The production settings' environment for a server process, plain HTTP straight to it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEST_", "DJANGO_", "CELERY_", "SECURE_", "MEDIA_", "DATABASE_"))
    }
    (scratch / "static").mkdir(parents=True, exist_ok=True)
    env.update(
        DJANGO_SETTINGS_MODULE="moderation.settings_production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        MODERATION_VAR_DIR=str(scratch / "var"),
        STATIC_ROOT=str(scratch / "static"),
        MEDIA_ROOT=str(scratch / "media"),
        BUNDLE_DIR=str(scratch / "bundles"),
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str],
    *,
    workers: int,
    threads: int,
    log: Path,
    ready_path: str = "/accounts/login/",
    ready_headers: dict[str, str] | None = None,
) -> Iterator[tuple[int, subprocess.Popen]]:
    """The web process of deploy/Procfile (gunicorn, gthread) on a free port, serving once
    `GET ready_path` answers 200, stopped at the end; yields the port and the process."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "moderation.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "120",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", ready_path, headers=ready_headers or {})
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not answer within 60 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
