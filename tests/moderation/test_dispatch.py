"""Services queue tasks through `moderation.dispatch`, and never import a `tasks` module."""

import ast
from pathlib import Path

import pytest
from django.db import transaction

from moderation import dispatch
from moderation.inference import tasks as inference_tasks
from tests.moderation.worker import broker

PACKAGE = Path(dispatch.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def test_only_tasks_modules_import_tasks_modules():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.endswith(".tasks"))
        for path in PACKAGE.rglob("*.py")
        if path.name != "tasks.py" and "migrations" not in path.parts
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.django_db(transaction=True)
def test_a_task_is_sent_on_commit_and_not_at_all_on_rollback(monkeypatch):
    sent = []
    monkeypatch.setattr(inference_tasks.predict_items, "delay", lambda *a, **k: sent.append(a))
    with transaction.atomic():
        dispatch.enqueue("moderation.inference.tasks.predict_items", [1])
        assert sent == []  # not before the rows are visible to a worker
    assert sent == [([1],)]
    with pytest.raises(RuntimeError), transaction.atomic():
        dispatch.enqueue("moderation.inference.tasks.predict_items", [2])
        raise RuntimeError("the write failed")
    assert sent == [([1],)]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_is_reported_not_raised():
    results = []
    with broker("redis://127.0.0.1:1/0"):
        dispatch.enqueue("moderation.inference.tasks.predict_items", [1], sent=results.append)
    assert results == [False]


def test_a_misspelt_task_raises():
    with pytest.raises(AttributeError):
        dispatch.send("moderation.inference.tasks.predict_itmes", [1])
