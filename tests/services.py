"""The servers a test session needs, started for it where they are stopped (a pytest plugin,
loaded by pyproject's `-p tests.services`).

Each server's URL comes from the environment, with the default of a machine that runs it:

    TEST_DATABASE_URL   postgres://postgres@127.0.0.1:5432/postgres (sqlite:///...: SQLite)
    TEST_REDIS_URL      redis://127.0.0.1:6379 (each test module picks its database: redis_url(12))
    TEST_RABBITMQ_URL   amqp://guest:guest@127.0.0.1:5672//

What the selected tests need (after -k, -m and deselection), module by module:

- PostgreSQL: every test but those of tests/rating_models/ (the pure-ML library, no Django) and
  tests/test_services.py, unless TEST_DATABASE_URL is SQLite; tests/bench/ and the production
  test need the one at 127.0.0.1:5432 even then (they create databases of their own there).
- Redis, RabbitMQ: a test whose module holds a redis:// or amqp:// URL at module level
  (`REDIS = redis_url(12)`, `RABBITMQ = RABBITMQ_URL`).
- Chromium: a test whose module imports moderation.demo.chromium, or a browser benchmark's.

Before the first test, for each server needed: where something accepts connections at its host
and port, the session uses it. Otherwise, on 127.0.0.1 or localhost, a throwaway server starts on
that port in a temporary directory (nothing kept; PostgreSQL with trust authentication and
fsync off), and is stopped and deleted when the session ends, after a failure or Ctrl-C too
(pytest killed with SIGKILL: its servers get a signal to stop, their directories stay); worker
processes that tests start reach it at the same URL. Where its program is not installed,
or Chromium is missing, the session stops before any test with one line that names the Debian
package to install (exit status 2).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import pytest

POSTGRES_DEFAULT = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE_URL = os.environ.get("TEST_DATABASE_URL", POSTGRES_DEFAULT)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")

# Where Debian installs the servers' programs, off a user's PATH (the newest PostgreSQL first).
POSTGRES_BINDIRS = "/usr/lib/postgresql/*/bin"
RABBITMQ_BINDIRS = "/usr/lib/rabbitmq/bin"
NO_SERVERS = ("tests/rating_models/", "tests/test_services.py")
POSTGRES_ANYWAY = ("tests/bench/", "tests/moderation/production/test_production.py")
BROWSER_BENCHES = ("tests/bench/test_hotkeys_bench.py", "tests/bench/test_review_speed_bench.py")
LOCAL = ("127.0.0.1", "localhost")


def redis_url(db: int) -> str:
    """The session's Redis, database `db`: each test module that starts workers has its own."""
    return urlsplit(REDIS_URL)._replace(path=f"/{db}").geturl()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


# The plugin ------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    if session.config.option.collectonly or session.testsfailed or not session.items:
        return
    needed = needs(session.items, session.config.rootpath)
    problem = missing(needed)
    if problem:
        pytest.exit(problem, returncode=pytest.ExitCode.INTERRUPTED)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for name in needed:
        server = SERVERS.get(name)
        if server and not answers(server):
            server.start()
            if reporter:
                reporter.write_line(
                    f"tests/services.py: a throwaway {server.title} at {server.where}"
                )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish() -> None:
    stop_all()  # after the session's fixtures: the test databases are dropped by then


# What the selected tests need, and what is missing ---------------------------------------------


def needs(items: list[pytest.Item], rootdir: Path) -> list[str]:
    """Of 'chromium', 'postgresql', 'rabbitmq' and 'redis', those the items need (see above)."""
    needed: set[str] = set()
    for item in items:
        path = Path(os.path.relpath(item.path, rootdir)).as_posix()
        if path.startswith(NO_SERVERS):
            continue
        if is_postgres(DATABASE_URL) or path.startswith(POSTGRES_ANYWAY):
            needed.add("postgresql")
        if path in BROWSER_BENCHES:
            needed.add("chromium")
        module = getattr(item, "module", None)
        for value in vars(module).values() if module else ():
            if isinstance(value, str) and value.startswith("redis://"):
                needed.add("redis")
            elif isinstance(value, str) and value.startswith("amqp://"):
                needed.add("rabbitmq")
            elif getattr(value, "__module__", None) == "moderation.demo.chromium":
                needed.add("chromium")
    return sorted(needed)


def missing(needed: list[str]) -> str | None:
    """One line: what is missing and the Debian packages that bring it; None if nothing is."""
    problems, packages = [], []
    for name in needed:
        if name == "chromium":
            from moderation.demo.chromium import CHROMIUM

            if not os.access(CHROMIUM, os.X_OK):
                problems.append(f"{CHROMIUM} is missing and browser tests are selected")
                packages.append("chromium")
            continue
        server = SERVERS[name]
        if answers(server):
            continue
        if server.host not in LOCAL:
            problems.append(f"nothing answers at {server.where} ({server.variable})")
            continue
        program = next((p for p in server.programs if not server.find(p)), None)
        if program:
            problems.append(f"{program} is not installed and nothing answers at {server.where}")
            packages.append(server.package)
    if not packages:
        return "; ".join(problems) or None
    return (
        f"{'; '.join(problems)}: install Debian's {' and '.join(packages)} "
        f"package{'s' if len(packages) > 1 else ''} (apt-get install {' '.join(packages)})"
    )


def answers(server: Server, timeout: float = 1.0) -> bool:
    """Whether something accepts a TCP connection at the server's host and port."""
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout):
            return True
    except OSError:
        return False


# Throwaway servers -----------------------------------------------------------------------------

STARTED: list[Started] = []
PYTEST_PID = os.getpid()


@dataclass
class Started:
    """A server started for the session, stopped with the session (it is in STARTED from the
    start, so that one which never answers is stopped too): its processes, stopped in reverse
    order, then its temporary directory, deleted."""

    title: str
    directory: Path = field(init=False)
    processes: list[tuple[subprocess.Popen, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=f"test-{self.title.lower()}-"))
        STARTED.append(self)

    def spawn(self, command: list, stop_signal: int, *, env=None, user=None) -> None:
        """Run `command` in a session of its own (Ctrl-C in the terminal reaches pytest alone,
        which stops it after the tests' teardown), its output in a log in the directory."""
        with (self.directory / f"{Path(command[0]).name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(part) for part in command],
                cwd=self.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=on_parent_death(stop_signal),
                **as_user(user),
            )
        self.processes.append((process, stop_signal))

    def wait_until_ready(self, probe: Callable[[], object], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe()
                return
            except Exception as error:
                exited = any(process.poll() is not None for process, _ in self.processes)
                if exited or time.monotonic() > deadline:
                    why = "exited" if exited else f"did not answer in {timeout:.0f} s"
                    self.fail(f"the throwaway {self.title} {why} ({self.last_log_line(error)})")
                time.sleep(0.2)

    def last_log_line(self, default: object) -> str:
        for log in sorted(self.directory.glob("*.log"), key=lambda p: p.stat().st_mtime)[::-1]:
            lines = log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1].strip()
        return str(default).strip()

    def fail(self, message: str) -> None:
        stop_all()
        pytest.exit(message, returncode=pytest.ExitCode.INTERRUPTED)

    def stop(self) -> None:
        STARTED[:] = [started for started in STARTED if started is not self]
        for process, stop_signal in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, stop_signal)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def stop_all() -> None:
    if os.getpid() != PYTEST_PID:
        return  # a child that pytest's process forked inherited this list, not the servers
    while STARTED:
        STARTED[-1].stop()


atexit.register(stop_all)


def on_parent_death(sig: int) -> Callable[[], None] | None:
    """For Popen: the child gets `sig` when pytest dies, even by SIGKILL (Linux)."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, sig)  # PR_SET_PDEATHSIG


def as_user(user: str | None) -> dict:
    """Popen's arguments that run a child as `user` (PostgreSQL refuses to run as root)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    title: str
    variable: str  # the environment variable with its URL
    url: SplitResult
    default_port: int
    package: str  # Debian's
    programs: tuple[str, ...]
    bindirs: str = ""  # a glob of directories to look in after PATH

    @property
    def host(self) -> str:
        return self.url.hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return self.url.port or self.default_port

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def find(self, program: str) -> str | None:
        bindirs = sorted(glob.glob(self.bindirs), key=version, reverse=True)
        return shutil.which(program) or shutil.which(program, path=os.pathsep.join(bindirs))

    def start(self) -> Started:
        raise NotImplementedError


def version(bindir: str) -> list[int]:
    """/usr/lib/postgresql/15/bin: [15]."""
    return [int(part) for part in Path(bindir).parent.name.split(".") if part.isdigit()]


class Postgres(Server):
    def start(self) -> Started:
        import psycopg

        url, role = self.url, self.url.username or "postgres"
        user = "postgres" if os.geteuid() == 0 else None  # initdb and postgres refuse root
        started = Started(self.title)
        if user:
            shutil.chown(started.directory, user, user)
        data = started.directory / "data"
        initdb = [self.find("initdb"), "-D", str(data), "-U", role, "--auth=trust", "--no-sync"]
        initdb += ["--encoding=UTF8", "--locale=C.UTF-8"]
        run = subprocess.run(
            initdb, cwd=started.directory, capture_output=True, text=True, **as_user(user)
        )
        if run.returncode:
            started.fail(f"initdb failed for the throwaway PostgreSQL ({run.stderr.strip()})")
        command = [self.find("postgres"), "-D", data, "-p", self.port, "-k", started.directory]
        for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
            command += ["-c", setting]
        command += ["-c", "listen_addresses=127.0.0.1"]
        started.spawn(command, signal.SIGINT, user=user)  # SIGINT: fast shutdown

        def connect() -> psycopg.Connection:
            return psycopg.connect(
                host=self.host, port=self.port, user=role, dbname="postgres", autocommit=True
            )

        started.wait_until_ready(lambda: connect().close(), timeout=60)
        name = url.path.lstrip("/") or "postgres"
        if name != "postgres":  # the URL's own database, for whatever connects to it
            with connect() as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
        return started


class Redis(Server):
    def start(self) -> Started:
        import redis

        started = Started(self.title)
        command = [self.find("redis-server"), "--port", self.port, "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", started.directory]
        started.spawn(command, signal.SIGTERM)
        client = redis.Redis(host=self.host, port=self.port)
        started.wait_until_ready(client.ping, timeout=30)
        return started


class RabbitMQ(Server):
    def start(self) -> Started:
        """A node of its own name with its own Erlang port mapper on a free port (one the node
        started itself would outlive it), its files and Erlang cookie in the directory."""
        import amqp

        url, started = self.url, Started(self.title)
        directory = started.directory
        user, password = unquote(url.username or "guest"), unquote(url.password or "guest")
        vhost = unquote(url.path[1:]) or "/"
        (directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            f"default_user = {user}\ndefault_pass = {password}\ndefault_vhost = {vhost}\n"
        )
        (directory / "enabled_plugins").write_text("[].\n")
        (directory / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's
        epmd_port = free_port()
        env = {
            **os.environ,
            "HOME": str(directory),
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": f"test{self.port}@localhost",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
        }
        started.spawn(
            [self.find("epmd"), "-port", epmd_port, "-address", "127.0.0.1"], signal.SIGTERM
        )
        program = Path(self.find("rabbitmq-server")).resolve()
        if program.name == "rabbitmq-script-wrapper":  # Debian's, which runs it as user rabbitmq
            program = program.parent / "rabbitmq-server"
        started.spawn([program], signal.SIGTERM, env=env)  # the script hands SIGTERM to the node

        def connect() -> None:
            connection = amqp.Connection(
                self.where,
                userid=user,
                password=password,
                virtual_host=vhost,
                connect_timeout=2,
            )
            connection.connect()
            connection.close()

        started.wait_until_ready(connect, timeout=120)
        return started


SERVERS: dict[str, Server] = {
    "postgresql": Postgres(
        "PostgreSQL",
        "TEST_DATABASE_URL",
        urlsplit(DATABASE_URL if is_postgres(DATABASE_URL) else POSTGRES_DEFAULT),
        5432,
        "postgresql",
        ("postgres", "initdb"),
        POSTGRES_BINDIRS,
    ),
    "redis": Redis(
        "Redis", "TEST_REDIS_URL", urlsplit(REDIS_URL), 6379, "redis-server", ("redis-server",)
    ),
    "rabbitmq": RabbitMQ(
        "RabbitMQ",
        "TEST_RABBITMQ_URL",
        urlsplit(RABBITMQ_URL),
        5672,
        "rabbitmq-server",
        ("rabbitmq-server", "epmd"),
        RABBITMQ_BINDIRS,
    ),
}
