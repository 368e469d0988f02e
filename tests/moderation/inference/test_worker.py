"""A real worker on a real broker rates items queued the way ingestion queues them."""

import select
import time

import pytest
from rest_framework.test import APIClient

from moderation.dispatch import send
from moderation.inference.models import Prediction
from moderation.media.models import ApiClient, MediaItem
from tests.moderation.worker import broker, empty_redis, wait_for, worker
from tests.services import redis_url

REDIS = redis_url(15)


def brokers(tmp_path_factory):
    return {"redis": REDIS, "embedded": f"sqla+sqlite:///{tmp_path_factory.mktemp('broker')}/b.db"}


@pytest.fixture(params=["redis", "embedded"])
def broker_url(request, tmp_path_factory):
    url = brokers(tmp_path_factory)[request.param]
    return empty_redis(url) if request.param == "redis" else url


@pytest.mark.django_db(transaction=True)
def test_items_created_through_the_api_get_predicted_by_a_real_worker(champion, broker_url):
    _, token = ApiClient.issue("acme")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    prompts = ["a cat on a sofa", "nude woman on a bed", "a dog in the park"]
    with broker(broker_url), worker(broker_url) as process:
        responses = [api.post("/api/v1/items/", {"prompt": p}, format="json") for p in prompts]
        assert [r.status_code for r in responses] == [201, 201, 201]
        assert all(r.json()["queued"] for r in responses)
        ids = list(MediaItem.objects.values_list("pk", flat=True))
        assert send(
            "moderation.inference.tasks.predict_items", ids
        )  # a duplicate message: the task is idempotent
        wait_for(
            lambda: Prediction.objects.filter(item_id__in=ids).count() == 3,
            what="three predictions",
        )
        assert process.poll() is None, "the worker died"
    assert Prediction.objects.filter(item_id__in=ids, model_version=champion).count() == 3
    for response in responses:
        detail = api.get(f"/api/v1/items/{response.json()['uid']}/").json()
        assert len(detail["predictions"]) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_an_inference_worker_loads_the_champion_before_its_first_task(
    champion, tmp_path_factory, pool
):
    url = brokers(tmp_path_factory)["embedded"]
    with broker(url), worker(url, pool=pool) as process:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                lines.append(process.stdout.readline())
                if "loaded the champion's bundle" in lines[-1]:
                    break
        assert f"loaded the champion's bundle ({champion.version}) at start" in "".join(lines)
