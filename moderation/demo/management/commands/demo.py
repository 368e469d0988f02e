"""`manage.py demo` (`make demo`): the whole product on one machine, from a fresh clone.

Migrates the embedded SQLite database, creates a demo moderator and admin, trains the default
bundle unless built, imports a few thousand corpus items and some photographs through the
ingestion service, starts a Celery worker, Celery beat (the sweep and the retrain check) and
the web server, waits until predictions flow and prints the URL. Ctrl-C stops every process
it started. A second run reuses everything.

    manage.py demo [--port 8000] [--bundle DIR] [--limit N] [--no-serve]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.demo import steps
from moderation.demo.quality import label_quality_seed

WORKER = ["-m", "celery", "-A", "moderation", "worker", "-Q", "inference,training,default"]
WORKER_OPTIONS = ["--pool", "solo", "--without-gossip", "--without-mingle", "-l", "info"]
# The sweep and the retrain check: the embedded broker never gives a killed worker's message
# back, and the sweep is what queues such items again.
BEAT = ["-m", "celery", "-A", "moderation", "beat", "-l", "info"]
# Predictions from the champion before the demo says they are flowing.
ENOUGH_PREDICTIONS = 20


class Command(BaseCommand):
    help = "Set up and run the whole product on this machine (SQLite, embedded broker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("DEMO_PORT", "8000")),
            help="web server port (default: $DEMO_PORT or 8000)",
        )
        parser.add_argument(
            "--bundle",
            type=Path,
            help="bundle directory to use (trained there with the fast preset unless built; "
            "default: BUNDLE_DIR/default)",
        )
        parser.add_argument(
            "--limit", type=int, help="import at most N items of each corpus file (for tests)"
        )
        parser.add_argument(
            "--no-serve",
            action="store_true",
            help="start the worker only, and stop once predictions are flowing (for tests)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=600,
            help="seconds to wait for the first predictions (default 600)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        # Both stop the demo, even where SIGINT was ignored (a background job of a script).
        signal.signal(signal.SIGINT, _raise_interrupt)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            people = self.set_up(options["bundle"] or steps.default_bundle_dir(), options["limit"])
            self.run_processes(people, options)
        except KeyboardInterrupt:
            self.step("stopping")
        finally:
            self.stop_processes()

    # ------------------------------------------------------------------------------ set-up

    def set_up(self, bundle: Path, limit: int | None) -> list[steps.Credentials]:
        self.step("1/5 database")
        steps.migrate(self.say)
        self.step("2/5 demo users")
        people = steps.users_ensure(self.say)
        self.step("3/5 rating bundle")
        steps.bundle_ensure(bundle.resolve(), self.say)
        steps.champion_ensure(bundle.resolve(), self.say)
        self.step("4/5 items")
        steps.items_ensure(limit, self.say)
        self.say(steps.queue_summary())
        return people

    # --------------------------------------------------------------------------- processes

    def run_processes(self, people: list[steps.Credentials], options: dict[str, Any]) -> None:
        self.step("5/5 worker, beat and web server")
        self.start("worker", [sys.executable, *WORKER, *WORKER_OPTIONS])
        self.start("beat", [sys.executable, *BEAT])
        self.wait_for_predictions(options["timeout"])
        self.say("label quality: gold items and blind double reviews")
        label_quality_seed(corpus_dir=steps.RATINGS, admin_username="admin", say=self.say)
        if options["no_serve"]:
            self.say("predictions are flowing; --no-serve: stopping")
            return
        url = f"http://127.0.0.1:{options['port']}/"
        self.start("web", *web_server(options["port"]))
        self.wait_for_web(url)
        self.announce(url, people)
        while True:
            self.check_alive()
            time.sleep(1)

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path(name).open("ab")
        # A session of its own: the demo alone decides when its children stop.
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.processes.append((name, process))
        self.say(f"started the {name} (pid {process.pid}, log {self.log_path(name)})")

    def log_path(self, name: str) -> Path:
        return Path(settings.VAR_DIR) / f"demo-{name}.log"

    def wait_for_predictions(self, timeout: float) -> None:
        version = steps.champion()
        total = steps.MediaItem.objects.count()
        enough = min(ENOUGH_PREDICTIONS, total)
        deadline = time.monotonic() + timeout
        last = -1
        while (done := steps.predicted_count(version)) < enough:
            if done != last:
                self.say(f"predicted {done}/{total} items, waiting for the worker ...")
                last = done
            self.check_alive()
            if time.monotonic() > deadline:
                raise CommandError(f"no predictions after {timeout:.0f} s; see the worker log")
            time.sleep(1)
        self.say(f"predictions are flowing: {done}/{total} items predicted by {version.version}")

    def wait_for_web(self, url: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url + "accounts/login/", timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise CommandError(f"the web server did not answer at {url}; see {self.log_path('web')}")

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise CommandError(
                    f"the {name} exited ({process.returncode}); see {self.log_path(name)}"
                )

    def stop_processes(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                self.say(f"stopping the {name} (pid {process.pid})")
                process.terminate()
        for name, process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.say(f"the {name} did not stop in 20 s: killing it")
                process.kill()
                process.wait()
        self.processes = []

    # ------------------------------------------------------------------------------ output

    def announce(self, url: str, people: list[steps.Credentials]) -> None:
        lines = [
            "",
            f"The demo is running: {url}review/",
            *(f"  {p.username:<10} password {p.password}  ({p.role})" for p in people),
            f"  (kept in {steps.credentials_file()})",
            f"  admin pages: {url}training/  {url}dashboards/  {url}admin/",
            "Ctrl-C stops the worker, beat and the web server.",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def step(self, title: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"== {title}"))
        self.stdout.flush()

    def say(self, message: str) -> None:
        self.stdout.write(f"   {message}")
        self.stdout.flush()


def web_server(port: int) -> tuple[list[str], dict[str, str]]:
    """The demo's web server: its command and environment.

    DEBUG off (unless DJANGO_DEBUG says otherwise), so that a missing page is the site's 404
    and an error the site's 500, never Django's debug pages with the settings and a
    traceback; `--insecure` has runserver serve the static files all the same, which is all
    the demo needed DEBUG for.
    """
    command = [
        sys.executable,
        "manage.py",
        "runserver",
        f"127.0.0.1:{port}",
        "--noreload",
        "--insecure",
    ]
    return command, {"DJANGO_DEBUG": "0", **os.environ}


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
