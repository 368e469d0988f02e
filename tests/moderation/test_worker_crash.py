"""A worker killed with SIGKILL mid-task, on each broker (issue 7).

Tasks are acknowledged when they finish, so the killed worker's message is still the broker's:
Redis hands it to the next worker after its visibility timeout (set to seconds here), RabbitMQ
when the killed worker's connection drops; the embedded SQLAlchemy transport marked it taken
and never gives it back, so only the periodic sweep finds those items. Whatever the broker,
after a restart every item has exactly one prediction from the champion, and a killed training
run is failed without touching the champion and without blocking the next run.

The worker runs `tests.moderation.crashing`, the project's app with a pause at a chosen call:
the test kills it once the pause's marker file exists, so it knows where the worker was.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from datetime import timedelta

import amqp
import kombu
import pytest
import redis
from django.conf import settings
from django.utils import timezone

from moderation.inference.models import ModelVersion, Prediction, RatingDispatch
from moderation.inference.tasks import sweep_unpredicted
from moderation.training import runs as training
from moderation.training.models import TrainingRun
from moderation.training.tasks import retrain_if_enough_labels
from tests.moderation.inference.conftest import bundle_dir, champion, make_items  # noqa: F401
from tests.moderation.training.conftest import labelled  # noqa: F401
from tests.moderation.worker import broker, kill, wait_for, worker
from tests.services import RABBITMQ_URL, redis_url

REDIS = redis_url(12)  # 13 to 15 are other tests' brokers
RABBITMQ = RABBITMQ_URL  # tests/services.py starts both where none answers
# Whether the broker gives a killed worker's unacknowledged message to the next worker.
REDELIVERS = {"redis": True, "rabbitmq": True, "embedded": False}
CRASHING = "tests.moderation.crashing"
VISIBILITY = {"CELERY_VISIBILITY_TIMEOUT": "3"}  # Redis redelivers after 3 s, not an hour
ITEMS, BATCH = 12, 4

# Each test starts one or two worker processes (10 to 40 s): `make test` runs them, test-fast not.
pytestmark = pytest.mark.slow


@pytest.fixture(params=["redis", "rabbitmq", "embedded"])
def crash_broker(request, tmp_path) -> tuple[str, str]:
    name = request.param
    if name == "redis":
        try:
            redis.Redis.from_url(REDIS).flushdb()  # messages of an earlier run name other rows
        except redis.ConnectionError:
            pytest.fail(f"Redis does not answer at {REDIS}")
        return name, REDIS
    if name == "rabbitmq":
        try:
            purge_rabbitmq()
        except OSError:
            pytest.fail(f"RabbitMQ does not answer at {RABBITMQ}")
        return name, RABBITMQ
    return name, f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


def purge_rabbitmq() -> None:
    with kombu.Connection(RABBITMQ, connect_timeout=3) as connection:
        connection.ensure_connection(max_retries=1)
        for queue in ("inference", "training", "default"):
            channel = connection.channel()
            try:
                channel.queue_purge(queue)
            except amqp.exceptions.NotFound:
                pass  # a 404 closes the channel; the next queue gets a new one
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


def predicted(ids: list[int]) -> int:
    return Prediction.objects.filter(item_id__in=ids).count()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_exactly_one_prediction_per_item(
    champion,  # noqa: F811
    crash_broker,
    tmp_path,
):
    name, url = crash_broker
    ids = [item.pk for item in make_items([f"a cat number {n}" for n in range(ITEMS)])]
    marker = tmp_path / "paused"
    # The second batch pauses after writing its rows, inside its still-open transaction.
    pause = {
        "PAUSE_IN": "moderation.review.claims:review_priorities_update",
        "PAUSE_AT": "2",
        "PAUSE_MARKER": str(marker),
    }
    with broker(url):
        assert sweep_unpredicted(batch_size=BATCH) == ITEMS  # three messages of four items
        with worker(url, app=CRASHING, env={**VISIBILITY, **pause}) as first:
            wait_for(marker.exists, what="the worker inside the second batch")
            kill(first)
        # The first batch was committed; the killed transaction of the second left nothing.
        assert predicted(ids) == BATCH

        with worker(url, env=VISIBILITY) as second:
            if REDELIVERS[name]:
                wait_for(lambda: predicted(ids) == ITEMS, what="the killed batch redelivered")
                redelivered, swept = BATCH, sweep_unpredicted(batch_size=BATCH)
                assert swept == 0
            else:
                wait_for(lambda: predicted(ids) == 2 * BATCH, what="the third batch")
                # Within their lease the sweep leaves the killed batch's items to its message.
                assert sweep_unpredicted(batch_size=BATCH) == 0
                # The message is gone with the worker: once the lease has run out, the sweep
                # finds its items.
                lease = timedelta(seconds=settings.RATING_LEASE_SECONDS + 1)
                RatingDispatch.objects.filter(item_id__in=ids).update(
                    dispatched_at=timezone.now() - lease
                )
                redelivered, swept = 0, sweep_unpredicted(batch_size=BATCH)
                assert swept == BATCH
                wait_for(lambda: predicted(ids) == ITEMS, what="the swept batch")
            assert second.poll() is None, "the restarted worker died"
        assert sweep_unpredicted(batch_size=BATCH) == 0

    pairs = Counter(
        Prediction.objects.filter(item_id__in=ids).values_list("item_id", "model_version_id")
    )
    duplicates = sum(n - 1 for n in pairs.values())
    assert set(pairs) == {(pk, champion.pk) for pk in ids}
    assert duplicates == 0
    print(
        "worker crash (inference): "
        + json.dumps(
            {
                "broker": name,
                "items": ITEMS,
                "batches": ITEMS // BATCH,
                "predictions": sum(pairs.values()),
                "redelivered_by_broker": redelivered,
                "queued_again_by_sweep": swept,
                "duplicates": duplicates,
            }
        )
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_process_has_its_batch_handed_back_at_once(
    champion,  # noqa: F811
    crash_broker,
    tmp_path,
):
    """Production workers run tasks in a child process; when only the child dies (the kernel's
    OOM killer), the parent rejects the message back to the broker (task_reject_on_worker_lost)
    and a new child runs it: no visibility timeout to wait for, nothing for the sweep."""
    name, url = crash_broker
    ids = [item.pk for item in make_items([f"a dog number {n}" for n in range(ITEMS)])]
    marker = tmp_path / "paused"
    pause = {
        "PAUSE_IN": "moderation.review.claims:review_priorities_update",
        "PAUSE_AT": "2",
        "PAUSE_MARKER": str(marker),
    }
    with broker(url):
        assert sweep_unpredicted(batch_size=BATCH) == ITEMS
        # Redis's visibility timeout stays an hour: only the rejection can bring the batch back.
        with worker(url, app=CRASHING, env=pause, pool="prefork") as process:
            wait_for(marker.exists, what="the pool process inside the second batch")
            child = int(marker.read_text())
            assert child != process.pid
            os.kill(child, signal.SIGKILL)
            wait_for(lambda: predicted(ids) == ITEMS, what="the killed batch run by a new child")
            assert process.poll() is None, "the worker died with its child"
        swept = sweep_unpredicted(batch_size=BATCH)
    assert swept == 0
    pairs = Counter(
        Prediction.objects.filter(item_id__in=ids).values_list("item_id", "model_version_id")
    )
    duplicates = sum(n - 1 for n in pairs.values())
    assert set(pairs) == {(pk, champion.pk) for pk in ids} and duplicates == 0
    print(
        "worker crash (pool process): "
        + json.dumps(
            {
                "broker": name,
                "items": ITEMS,
                "predictions": sum(pairs.values()),
                "queued_again_by_sweep": swept,
                "duplicates": duplicates,
            }
        )
    )


# The worker beats every half second and a run silent for 3 s is stale (the defaults: 30 s and
# 30 min). The gate passes on the fixture data but waits for an admin.
TRAINING = {
    "TRAINING_HEARTBEAT_SECONDS": "0.5",
    "TRAINING_STALE_MINUTES": "0.05",
    "AUTO_PROMOTE": "0",
    "GATE_MIN_EXPLICIT": "0",
    "GATE_F1_TOLERANCE": "1.0",
    "GATE_DCM_TOLERANCE": "1.0",
    "GATE_SEVERE_TOLERANCE": "100",
}


def run_state(run: TrainingRun) -> TrainingRun:
    run.refresh_from_db()
    return run


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_training_leaves_the_champion_and_frees_the_next_run(
    labelled,  # noqa: F811
    crash_broker,
    settings,
    tmp_path,
):
    name, url = crash_broker
    settings.TRAINING_STALE_MINUTES = float(TRAINING["TRAINING_STALE_MINUTES"])
    champion = ModelVersion.objects.get(status="champion")  # noqa: F811
    versions = ModelVersion.objects.count()
    marker = tmp_path / "paused"
    pause = {
        "PAUSE_IN": "rating_models.combine.mlp:MultimodalMLP.fit",
        "PAUSE_MARKER": str(marker),
    }
    env = {**VISIBILITY, **TRAINING}
    queues = "training,default"
    with broker(url):
        with worker(url, queues=queues, app=CRASHING, env={**env, **pause}) as first:
            killed = training.training_run_start()
            wait_for(marker.exists, what="the worker inside the MLP's training")
            assert run_state(killed).state == TrainingRun.State.RUNNING
            beat = killed.heartbeat_at
            wait_for(lambda: run_state(killed).heartbeat_at > beat, what="a heartbeat")
            kill(first)
        started = time.monotonic()
        # Stale once its heartbeat is 3 s old; before that a redelivered message leaves it be,
        # as it would leave a live worker's run.
        stale_at = run_state(killed).heartbeat_at + timedelta(
            minutes=settings.TRAINING_STALE_MINUTES
        )
        time.sleep(max(0.0, (stale_at - timezone.now()).total_seconds()) + 0.5)
        assert run_state(killed).state == TrainingRun.State.RUNNING
        assert ModelVersion.objects.get(status="champion") == champion
        assert ModelVersion.objects.count() == versions  # no candidate was registered

        with worker(url, queues=queues, env=env) as second:
            if REDELIVERS[name]:
                # The redelivered message finds the run's heartbeat stopped and fails it.
                how = "its redelivered message"
            else:
                # The message died with the worker: the periodic check (beat's) fails the run.
                retrain_if_enough_labels.delay()
                how = "the periodic retrain check"
            wait_for(
                lambda: run_state(killed).state == TrainingRun.State.FAILED,
                what=f"the killed run failed by {how}",
            )
            recovered = time.monotonic() - started
            assert "heartbeats" in killed.reason
            assert killed.active is None and killed.candidate is None
            assert ModelVersion.objects.get(status="champion") == champion

            following = training.training_run_start()
            wait_for(lambda: not run_state(following).is_active, timeout=120, what="the next run")
            assert following.state == TrainingRun.State.SUCCEEDED, following.reason + following.log
            assert second.poll() is None, "the restarted worker died"
    assert run_state(killed).state == TrainingRun.State.FAILED  # a late redelivery changes nothing
    assert ModelVersion.objects.get(status="champion") == champion
    print(
        "worker crash (training): "
        + json.dumps(
            {
                "broker": name,
                "killed_run": killed.state,
                "failed_by": how,
                "seconds_from_kill_to_failed": round(recovered, 1),
                "champion_unchanged": True,
                "next_run": following.state,
            }
        )
    )
