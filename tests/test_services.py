"""tests/services.py: which servers a session needs, the one line when a program is missing, and
throwaway servers that start, answer and leave nothing behind."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from tests import services

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    return services.free_port()


def redis_at(port: int) -> str:
    return f"redis://127.0.0.1:{port}"


def server(name: str, url: str) -> services.Server:
    return dataclasses.replace(services.SERVERS[name], url=urlsplit(url))


def pytest_run(tmp_path: Path, source: str, env: dict[str, str]) -> subprocess.Popen:
    """pytest in a subprocess on one test module written from `source`, with this project's
    configuration (and so its plugin) and the environment changed by `env`."""
    (tmp_path / "test_it.py").write_text(source)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", ROOT]
    command += ["-c", ROOT / "pyproject.toml", tmp_path / "test_it.py"]
    return subprocess.Popen(
        [str(part) for part in command],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def gone(started: services.Started, target: services.Server) -> bool:
    """Its processes exited, nothing answers at its port, its directory is deleted and no
    process names that directory any more (a PostgreSQL backend, an Erlang helper)."""
    return (
        all(process.poll() is not None for process, _ in started.processes)
        and not services.answers(target)
        and not started.directory.exists()
        and not any(str(started.directory) in cmdline(proc) for proc in processes())
    )


def processes() -> list[Path]:
    return list(Path("/proc").glob("[0-9]*"))


def cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


# Which servers a session needs -------------------------------------------------------------


def item(path: str, **module_globals) -> SimpleNamespace:
    return SimpleNamespace(path=ROOT / path, module=SimpleNamespace(**module_globals))


def test_the_pure_ml_tests_need_no_server():
    items = [item("tests/rating_models/test_agreement.py"), item("tests/test_services.py")]
    assert services.needs(items, ROOT) == []


def test_a_module_holding_a_broker_url_needs_that_broker(monkeypatch):
    monkeypatch.setattr(services, "DATABASE_URL", services.POSTGRES_DEFAULT)
    redis_only = item("tests/moderation/inference/test_worker.py", REDIS=services.redis_url(15))
    assert services.needs([redis_only], ROOT) == ["postgresql", "redis"]
    crash = item(
        "tests/moderation/test_worker_crash.py", REDIS="redis://h/1", RABBITMQ="amqp://g@h//"
    )
    assert services.needs([crash], ROOT) == ["postgresql", "rabbitmq", "redis"]


def test_a_browser_test_needs_chromium_and_sqlite_needs_no_postgresql(monkeypatch):
    from moderation.demo.chromium import launch

    monkeypatch.setattr(services, "DATABASE_URL", "sqlite:////tmp/x.sqlite3")
    browser = item("tests/moderation/review/test_browser.py", launch=launch)
    assert services.needs([browser], ROOT) == ["chromium"]
    # The benchmarks make databases of their own on the local PostgreSQL, whatever the suite's.
    bench = item("tests/bench/test_review_speed_bench.py")
    assert services.needs([bench], ROOT) == ["chromium", "postgresql"]


# The one line when something is missing ----------------------------------------------------


def test_missing_programs_and_chromium_are_named_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    redis = server("redis", redis_at(closed_port()))
    postgres = dataclasses.replace(
        server("postgresql", f"postgres://postgres@localhost:{closed_port()}/postgres"),
        bindirs=str(tmp_path / "*"),
    )
    monkeypatch.setitem(services.SERVERS, "redis", redis)
    monkeypatch.setitem(services.SERVERS, "postgresql", postgres)
    monkeypatch.setattr("moderation.demo.chromium.CHROMIUM", str(tmp_path / "chromium"))

    assert services.missing(["redis"]) == (
        f"redis-server is not installed and nothing answers at {redis.where}: "
        "install Debian's redis-server package (apt-get install redis-server)"
    )
    assert services.missing(["chromium", "postgresql"]) == (
        f"{tmp_path / 'chromium'} is missing and browser tests are selected; "
        f"postgres is not installed and nothing answers at {postgres.where}: "
        "install Debian's chromium and postgresql packages (apt-get install chromium postgresql)"
    )


def test_nothing_is_missing_where_a_server_can_start(monkeypatch):
    assert services.missing([]) is None
    # A closed local port is no problem where the program is installed (CI installs it).
    redis = server("redis", redis_at(closed_port()))
    assert redis.find("redis-server"), "install Debian's redis-server package"
    monkeypatch.setitem(services.SERVERS, "redis", redis)
    assert services.missing(["redis"]) is None


def test_a_remote_server_that_does_not_answer_is_named_with_its_variable(monkeypatch):
    remote = server("rabbitmq", "amqp://guest:guest@192.0.2.1:5672//")  # TEST-NET: unroutable
    monkeypatch.setitem(services.SERVERS, "rabbitmq", remote)
    monkeypatch.setattr(services, "answers", lambda server: False)
    assert services.missing(["rabbitmq"]) == (
        "nothing answers at 192.0.2.1:5672 (TEST_RABBITMQ_URL)"
    )


def test_a_session_without_its_program_stops_before_any_test(tmp_path):
    port = closed_port()
    source = f'REDIS = "redis://127.0.0.1:{port}/3"\n\ndef test_it():\n    print("RAN")\n'
    empty = tmp_path / "bin"
    empty.mkdir()
    began = time.monotonic()
    run = pytest_run(tmp_path, source, {"PATH": str(empty), "TEST_REDIS_URL": redis_at(port)})
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 2, output
    line = (
        f"redis-server is not installed and nothing answers at 127.0.0.1:{port}: "
        "install Debian's redis-server package (apt-get install redis-server)"
    )
    said = [text for text in output.splitlines() if "redis-server" in text]
    assert len(said) == 1 and line in said[0], output
    assert "RAN" not in output and "no tests ran" in output
    assert time.monotonic() - began < 60


# Throwaway servers ------------------------------------------------------------------------


URLS = {
    "postgresql": "postgres://postgres@127.0.0.1:{port}/scratch",
    "redis": "redis://127.0.0.1:{port}",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:{port}//",
}


# RabbitMQ takes about 8 s to boot, PostgreSQL 1.5 s, Redis 0.1 s.
@pytest.mark.parametrize(
    "name", ["postgresql", "redis", pytest.param("rabbitmq", marks=pytest.mark.slow)]
)
def test_a_throwaway_server_starts_answers_and_is_gone_after_stop(name):
    target = server(name, URLS[name].format(port=closed_port()))
    assert not services.answers(target)
    started = target.start()
    try:
        assert started in services.STARTED
        if name == "postgresql":
            import psycopg

            # The URL's own database exists; trust authentication, fsync off.
            with psycopg.connect(target.url.geturl()) as connection:
                assert connection.execute("SHOW fsync").fetchone() == ("off",)
        elif name == "redis":
            import redis

            client = redis.Redis.from_url(target.url.geturl() + "/4")
            client.set("k", "v")
            assert client.get("k") == b"v"
        else:
            import kombu

            with kombu.Connection(target.url.geturl(), connect_timeout=5) as connection:
                queue = connection.SimpleQueue("services-test")
                queue.put({"n": 1})
                assert queue.get(timeout=5).payload == {"n": 1}
                queue.close()
    finally:
        started.stop()
    assert started not in services.STARTED
    assert gone(started, target)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_session_stopped_mid_test_leaves_no_server_behind(tmp_path, how):
    """The plugin end to end: a session that needs a stopped Redis starts one on its port, its
    test reaches it, and Ctrl-C (or SIGKILL, which leaves the server its parent's death) stops
    it."""
    port = closed_port()
    marker = tmp_path / "reached"
    source = (
        "import time\n\nimport redis\n\n"
        f'REDIS = "redis://127.0.0.1:{port}/3"\n\n'
        "def test_it():\n"
        "    assert redis.Redis.from_url(REDIS).ping()\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    time.sleep(120)\n"
    )
    before = set(Path(tempfile.gettempdir()).glob("test-redis-*"))
    run = pytest_run(tmp_path, source, {"TEST_REDIS_URL": redis_at(port)})
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, "the test never reached Redis"
            time.sleep(0.2)
        run.send_signal(how)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    directories = set(Path(tempfile.gettempdir()).glob("test-redis-*")) - before
    if how == signal.SIGINT:
        assert f"a throwaway Redis at 127.0.0.1:{port}" in output
        assert directories == set()
    else:  # nothing ran to delete the (empty) directory
        for directory in directories:
            shutil.rmtree(directory)
    deadline = time.monotonic() + 10
    while services.answers(server("redis", redis_at(port))) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = [int(proc.name) for proc in processes() if f":{port}" in cmdline(proc)]
    for pid in leftovers:  # so that a failure leaves nothing running either
        os.kill(pid, signal.SIGKILL)
    assert leftovers == []
