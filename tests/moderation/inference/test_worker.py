"""A real worker on a real broker rates items queued the way ingestion queues them."""

import pytest
import redis

from moderation.inference.models import Prediction
from moderation.inference.services import enqueue_prediction
from tests.moderation.inference.conftest import make_items
from tests.moderation.worker import broker, wait_for, worker

REDIS = "redis://127.0.0.1:6379/15"


def brokers(tmp_path_factory):
    return {"redis": REDIS, "embedded": f"sqla+sqlite:///{tmp_path_factory.mktemp('broker')}/b.db"}


@pytest.fixture(params=["redis", "embedded"])
def broker_url(request, tmp_path_factory):
    url = brokers(tmp_path_factory)[request.param]
    if request.param == "redis":
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()  # messages left by an earlier run name items that do not exist
        except redis.ConnectionError:
            pytest.fail("Redis is not running on 127.0.0.1:6379 (see .ci/run)")
    return url


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_predicts_queued_items_once(champion, broker_url):
    items = make_items(["a cat on a sofa", "nude woman on a bed", "a dog in the park"])
    ids = [i.pk for i in items]
    with broker(broker_url), worker(broker_url) as process:
        assert enqueue_prediction(ids[:2])
        assert enqueue_prediction(ids[2:])
        assert enqueue_prediction(ids)  # a duplicate message: the task is idempotent
        wait_for(
            lambda: Prediction.objects.filter(item_id__in=ids).count() == 3,
            what="three predictions",
        )
        assert process.poll() is None, "the worker died"
    assert Prediction.objects.filter(item_id__in=ids, model_version=champion).count() == 3
