"""The production configuration as real processes: migrate, collectstatic, register_bundle and
api_client as commands, then gunicorn, a Celery worker and Celery beat on a fresh PostgreSQL
database and a Redis database of their own. Items go in through the API over HTTP, get
predicted by the worker, and a moderator reviews them after logging in; WhiteNoise serves the
static files."""

from __future__ import annotations

import contextlib
import html
import http.cookiejar
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
import pytest
import redis
from PIL import Image

from rating_models.train import BundleConfig, train_bundle
from tests.rating_models.bundles import lstm_bundle_config, toy_examples
from tests.services import redis_url

ROOT = Path(__file__).resolve().parents[3]
REDIS = redis_url(13)  # test_worker uses 15, the browser test 14
PROMPTS = ["a cat on a sofa", "nude woman on a bed", 'a <b>dog</b> & "friends" in the park']
TIMEOUT = 120  # seconds for any one wait: the processes start in a few


def postgres_server() -> dict[str, Any]:
    """The PostgreSQL server the suite uses (TEST_DATABASE_URL), or the local one."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    return dj_database_url.parse(url)


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database for the production processes, dropped at the end."""
    server = postgres_server()
    name = f"prod_test_{uuid.uuid4().hex[:12]}"
    credentials = {
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or 5432,
        "user": server["USER"] or "postgres",
        "password": server["PASSWORD"] or None,
    }
    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, **credentials)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable ({error})")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            password = f":{credentials['password']}" if credentials["password"] else ""
            yield (
                f"postgres://{credentials['user']}{password}@{credentials['host']}:"
                f"{credentials['port']}/{name}"
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def broker_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS)
    try:
        client.flushdb()  # messages of an earlier run name items that do not exist
    except redis.ConnectionError:
        pytest.fail(f"Redis does not answer at {REDIS}")
    yield REDIS
    client.flushdb()


def tiny_bundle(directory: Path) -> Path:
    """A tiny trained bundle (tag rules and two word LSTMs), as the inference tests build."""
    config = BundleConfig.from_preset("fast", lstm_bundle_config())
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 90)).save(out, format="PNG")
    return out.getvalue()


def wait_for(condition: Callable[[], Any], what: str, processes: dict) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for name, (process, log) in processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail(log)}")
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    logs = "\n".join(f"--- {n}\n{tail(log)}" for n, (_, log) in processes.items())
    raise AssertionError(f"timed out after {TIMEOUT} s waiting for {what}\n{logs}")


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class Http:
    """A tiny HTTP client over urllib: cookies kept, redirects followed, errors returned."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # straight to 127.0.0.1, whatever http_proxy says
            urllib.request.HTTPCookieProcessor(self.cookies),
        )

    def request(
        self, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        status, _, content = self.request(path, data=data, headers=headers)
        return status, json.loads(content)

    def multipart(self, path: str, token: str, fields: dict, files: dict) -> tuple[int, Any]:
        boundary = secrets.token_hex(16)
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        for name, (filename, content, content_type) in files.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        status, _, content = self.request(path, data=b"".join(parts), headers=headers)
        return status, json.loads(content)

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.cookies if c.name == name)


@contextlib.contextmanager
def started(processes: dict, name: str, command: list[str], env: dict, logs: Path) -> Iterator:
    log = logs / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    processes[name] = (process, log)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_production_processes_ingest_predict_and_serve_review(
    database, broker_url, tmp_path
) -> None:
    var = tmp_path / "var"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEST_", "DJANGO_", "CELERY_", "SECURE_", "MEDIA_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="moderation.settings_production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database,
        CELERY_BROKER_URL=broker_url,
        MODERATION_VAR_DIR=str(var),
        STATIC_ROOT=str(tmp_path / "static"),
        MEDIA_ROOT=str(tmp_path / "media"),
        BUNDLE_DIR=str(tmp_path / "bundles"),
        RATING_DEVICE="cpu",
        # Plain HTTP straight to gunicorn: no TLS in front of it here.
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        PYTHONUNBUFFERED="1",
    )

    def manage(*commands: list[str]) -> list[str]:
        """Run manage.py commands side by side (each pays Django's start-up); their stdouts."""
        running = [
            subprocess.Popen(
                [sys.executable, "manage.py", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        outputs = []
        for args, process in zip(commands, running, strict=True):
            try:
                out, err = process.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            assert process.returncode == 0, f"manage.py {args}:\n{out}\n{err}"
            outputs.append(out)
        return outputs

    # The release steps (while the tiny bundle trains), then the operator's first commands.
    release = [["migrate", "--noinput"], ["collectstatic", "--noinput"]]
    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(ThreadPoolExecutor(1))
        releasing = executor.submit(manage, *release)
        bundle = tiny_bundle(tmp_path / "bundle")
        releasing.result()
    assert (tmp_path / "static" / "staticfiles.json").exists()
    port = free_port()
    http_client = Http(f"http://127.0.0.1:{port}")
    gunicorn = [sys.executable, "-m", "gunicorn", "moderation.wsgi", "--bind", f"127.0.0.1:{port}"]
    gunicorn += ["--workers", "1", "--threads", "4", "--timeout", "60", "--access-logfile", "-"]
    celery = [sys.executable, "-m", "celery", "-A", "moderation"]
    worker = [*celery, "worker", "-Q", "inference,training,default", "--pool", "solo"]
    worker += ["--without-gossip", "--without-mingle", "-l", "info"]
    processes: dict = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    with (
        started(processes, "gunicorn", gunicorn, env, logs),
        started(processes, "worker", worker, env, logs),
        started(processes, "beat", [*celery, "beat", "-l", "info"], env, logs),
    ):
        # The operator's first commands, while the processes start.
        password = secrets.token_urlsafe(16)
        registered, issued, _ = manage(
            ["register_bundle", str(bundle), "--promote"],
            ["api_client", "acme"],
            [
                "shell",
                "-c",
                "from django.contrib.auth.models import Group, User; "
                f"u = User.objects.create_user('moderator', password='{password}'); "
                "u.groups.add(Group.objects.get(name='moderators'))",
            ],
        )
        assert "champion" in registered
        token = issued.strip().splitlines()[-1]

        def listening() -> bool:
            try:
                return http_client.request("/accounts/login/")[0] == 200
            except urllib.error.URLError:  # not listening yet
                return False

        wait_for(listening, "gunicorn", processes)

        # Ingestion over HTTP: prompt-only items as JSON, an image as multipart.
        uids = {}
        for prompt in PROMPTS:
            status, body = http_client.json("/api/v1/items/", token, {"prompt": prompt})
            assert status == 201, body
            assert body["queued"] is True
            uids[prompt] = body["uid"]
        status, body = http_client.multipart(
            "/api/v1/items/",
            token,
            {"prompt": "a red car at night"},
            {"image": ("car.png", png(), "image/png")},
        )
        assert status == 201, body
        assert (body["width"], body["height"]) == (40, 30)
        image_uid = body["uid"]
        uids["a red car at night"] = image_uid
        assert http_client.json("/api/v1/items/", "wrong-token")[0] == 401

        # The worker rates every item with the champion.
        def predicted() -> bool:
            details = [http_client.json(f"/api/v1/items/{u}/", token)[1] for u in uids.values()]
            return all(len(d["predictions"]) == 1 for d in details)

        wait_for(predicted, "every item predicted", processes)
        for uid in uids.values():
            detail = http_client.json(f"/api/v1/items/{uid}/", token)[1]
            assert detail["predictions"][0]["rating"] in {"PG", "PG13", "R", "X", "XXX"}

        # Beat runs on the database schedule: it has stored the configured periodic tasks.
        def scheduled() -> bool:
            with psycopg.connect(database) as c:
                rows = c.execute("SELECT name FROM django_celery_beat_periodictask").fetchall()
            return {"sweep-unpredicted", "retrain-when-labels-arrive"} <= {r[0] for r in rows}

        wait_for(scheduled, "beat's schedule in the database", processes)

        # A moderator logs in over HTTP with the CSRF token and reviews.
        assert http_client.request("/review/")[2].count(b'name="username"') == 1  # to login
        status, _, _ = http_client.request("/accounts/login/")
        assert status == 200
        form = urllib.parse.urlencode(
            {
                "username": "moderator",
                "password": password,
                "csrfmiddlewaretoken": http_client.cookie("csrftoken"),
                "next": "/review/",
            }
        ).encode()
        status, headers, page = http_client.request("/accounts/login/", data=form)
        assert status == 200, page[:2000]
        text = page.decode()
        assert "Log in</h1>" not in text, "the login was refused"
        # The review page takes its item by POST once loaded (a GET claims nothing).
        assert 'hx-post="/review/claim/"' in text, text[:3000]
        token = urllib.parse.urlencode({"csrfmiddlewaretoken": http_client.cookie("csrftoken")})
        status, headers, page = http_client.request("/review/claim/", data=token.encode())
        assert status == 200, page[:2000]
        text = page.decode()
        assert any(html.escape(p) in text for p in uids), text[:3000]
        assert headers.get("X-Frame-Options") == "DENY"
        assert headers.get("X-Content-Type-Options") == "nosniff"

        # The item history page escapes the prompt; the image is served to the moderator.
        tricky = PROMPTS[2]
        status, _, page = http_client.request(f"/review/items/{uids[tricky]}/")
        assert status == 200
        assert html.escape(tricky) in page.decode()
        assert tricky not in page.decode()
        status, headers, content = http_client.request(f"/review/items/{image_uid}/image/")
        assert status == 200
        assert content.startswith(b"\x89PNG")

        # WhiteNoise serves static files: the plain name and the hashed, compressed one.
        status, headers, content = http_client.request("/static/vendor/htmx/htmx.min.js")
        assert status == 200 and b"htmx" in content
        hashed = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"][
            "vendor/htmx/htmx.min.js"
        ]
        status, headers, _ = http_client.request(
            f"/static/{hashed}", headers={"Accept-Encoding": "gzip"}
        )
        assert status == 200
        assert headers.get("Content-Encoding") == "gzip"
        assert "immutable" in headers.get("Cache-Control", "")

        for name, (process, log) in processes.items():
            assert process.poll() is None, f"{name} died:\n{tail(log)}"
