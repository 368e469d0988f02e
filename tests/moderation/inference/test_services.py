import json
import shutil

import numpy as np
import pytest
from django.utils import timezone

from moderation.inference import bundles, services, versions
from moderation.inference.models import ModelVersion, Prediction, RatingDispatch
from moderation.inference.tasks import predict_items, sweep_unpredicted
from moderation.review.models import ReviewState
from rating_models.bundle import BundleError
from tests.moderation.inference.conftest import make_items

pytestmark = pytest.mark.django_db


def test_predicting_twice_writes_one_prediction_per_item_and_version(champion):
    items = make_items(["a cat on a sofa", "nude woman on a bed"])
    ids = [i.pk for i in items]
    assert services.predictions_create(item_ids=ids) == 2
    assert services.predictions_create(item_ids=ids) == 0
    assert predict_items(ids) == 0  # the task is as idempotent as the service
    assert Prediction.objects.filter(model_version=champion).count() == 2


def waiting_items(prompts: list[str]) -> list[int]:
    """Items stored and queued as ingestion queues them (their dispatch stamped)."""
    ids = [i.pk for i in make_items(prompts)]
    RatingDispatch.objects.stamp(item_ids=ids, new=True)
    return ids


def test_a_new_items_task_rates_the_items_waiting_beside_it_in_one_batch(champion, settings):
    settings.INFERENCE_BATCH_SIZE = 4
    ids = waiting_items([f"a cat, study {n}" for n in range(6)])

    assert predict_items([ids[0]], gather=True) == 4  # its own item and the 3 oldest waiting
    assert set(Prediction.objects.values_list("item_id", flat=True)) == set(ids[:4])
    assert predict_items([ids[1]], gather=True) == 2  # its own is done; the two still waiting
    assert predict_items([ids[5]], gather=True) == 0
    assert predict_items(ids[:1]) == 0  # without gathering, only the items named
    assert Prediction.objects.filter(model_version=champion).count() == 6


def test_a_backlog_drains_in_full_batches_whichever_message_comes_first(champion, settings):
    """After a restart every item of a backlog has its own message: the first messages rate
    the oldest waiting items in batches, whatever item they were queued for (before, a
    message gathered only ids near its own, and a backlog drained one item per message)."""
    settings.INFERENCE_BATCH_SIZE = 4
    ids = waiting_items([f"a dog, study {n}" for n in range(12)])

    rated = [predict_items([pk], gather=True) for pk in ids]

    # A message's own item takes one place in its batch, rated or not.
    assert rated == [4, 3, 3, 2] + [0] * 8
    assert Prediction.objects.filter(model_version=champion).count() == 12


def test_only_items_still_waiting_are_gathered(champion, settings):
    ids = waiting_items([f"a tree, study {n}" for n in range(5)])
    never_queued = make_items(["a house"])[0].pk
    services.predictions_create(item_ids=ids[1:2])
    RatingDispatch.objects.filter(item_id=ids[3]).update(failed_at=timezone.now(), failure="x")

    waiting = services.items_awaiting_prediction(version=champion, near=ids[:1], limit=100)

    # Not itself, not the rated one, not the failed one, not one never queued.
    assert waiting == [ids[2], ids[4]] and never_queued not in waiting
    assert services.items_awaiting_prediction(version=champion, near=ids[:1], limit=1) == ids[2:3]


def test_a_prediction_keeps_every_experts_output_and_compact_features(champion):
    (item,) = make_items(["nude woman on a bed"])
    services.predictions_create(item_ids=[item.pk])
    prediction = Prediction.objects.get(item=item)
    assert set(prediction.experts) == {"tag_rules", "lstm", "lstm_tags"}
    assert all(e["rating"] in {1, 2, 4, 8, 16} for e in prediction.experts.values())
    assert prediction.suggested_rating == max(prediction.voter_rating, prediction.mlp_rating)
    assert len(prediction.mlp_probs) == 5
    sizes = sum(e["feature_size"] for e in champion.manifest["experts"])
    features = prediction.feature_array()
    assert features.dtype == np.float16 and features.shape == (sizes,)
    # All three spoke, and the MLP was trained with all three: it read every one.
    assert prediction.mlp_experts == ["tag_rules", "lstm", "lstm_tags"]


def test_prompt_only_items_record_the_tag_experts_abstention(champion):
    (item,) = make_items(["a cat on a sofa"])
    item.tags = None
    item.save()
    services.predictions_create(item_ids=[item.pk])
    prediction = Prediction.objects.get(item=item)
    experts = prediction.experts
    assert experts["tag_rules"] == {"rating": None, "probs": None}
    assert experts["lstm"]["rating"] is not None
    # An abstaining expert is absent for the MLP: not among the experts it read.
    bundle = bundles.bundle_for(champion)
    said = bundle.predict([services.item_example(item)])
    assert prediction.mlp_experts == said.mlp_experts(0) == ["lstm"]


def test_predictions_stored_before_the_mlp_experts_were_recorded_get_the_experts_that_spoke(
    champion,
):
    """The migration fills the rows written before it with the experts that did not abstain:
    the MLP then read every expert that spoke."""
    import importlib

    from django.apps import apps
    from django.db import connection

    from moderation.audit.append_only import drop_sql

    migration = importlib.import_module(
        "moderation.inference.migrations.0003_prediction_mlp_experts"
    )
    spoke, silent = make_items(["nude woman on a bed", "a cat on a sofa"])
    services.predictions_create(item_ids=[spoke.pk, silent.pk])
    # The migration ran before predictions were append-only (inference 0004): the trigger is
    # lifted inside this test's transaction, which the test's rollback puts back.
    with connection.cursor() as cursor:
        for sql in drop_sql("inference_prediction", connection.vendor):
            cursor.execute(sql)
    Prediction.objects.update(mlp_experts=[])  # as the new column starts
    Prediction.objects.filter(item=silent).update(
        experts={"tag_rules": {"rating": None, "probs": None}, "lstm": {"rating": None}}
    )

    migration.backfill(apps, type("SchemaEditor", (), {"connection": connection})())

    assert sorted(Prediction.objects.get(item=spoke).mlp_experts) == [
        "lstm",
        "lstm_tags",
        "tag_rules",
    ]
    assert Prediction.objects.get(item=silent).mlp_experts == []


def test_a_prediction_sets_the_items_queue_priority(champion):
    (item,) = make_items(["nude naked art"])
    assert ReviewState.objects.get(item=item).priority == 0
    services.predictions_create(item_ids=[item.pk])
    assert ReviewState.objects.get(item=item).priority > 0


def test_predicting_without_a_champion_is_refused(db):
    (item,) = make_items(["a cat"])
    with pytest.raises(bundles.NoChampion):
        services.predictions_create(item_ids=[item.pk])
    assert predict_items([item.pk]) == 0


def test_promoting_leaves_exactly_one_champion(champion, bundle_dir, tmp_path):
    # A worker that has the old champion loaded ...
    assert bundles.bundle_for(bundles.champion()).version == champion.version
    second = tmp_path / "second"
    shutil.copytree(bundle_dir, second)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["version"] = "second"
    (second / "manifest.json").write_text(json.dumps(manifest))
    newer = versions.model_version_register(path=second, promote=True)
    champion.refresh_from_db()
    assert newer.status == ModelVersion.Status.CHAMPION
    assert champion.status == ModelVersion.Status.FORMER
    assert ModelVersion.objects.filter(status="champion").count() == 1
    # ... loads the new one on its next task, with no restart.
    assert bundles.bundle_for(bundles.champion()).version == "second"
    item = make_items(["a cat on a sofa"])[0]
    assert services.predictions_create(item_ids=[item.pk]) == 1
    assert item.predictions.get().model_version == newer


def test_a_corrupt_bundle_never_becomes_a_model_version(db, bundle_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    weights = broken / "mlp" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(BundleError, match="corrupt"):
        versions.model_version_register(path=broken, promote=True)
    assert not ModelVersion.objects.exists()


def test_the_sweep_finds_items_without_a_champion_prediction(champion):
    items = make_items(["a cat", "a dog", "a tree"])
    services.predictions_create(item_ids=[items[0].pk])
    assert sweep_unpredicted() == 2


def test_rate_now_stores_nothing(champion):
    from rating_models.examples import Example

    version, prediction = services.rate_now(Example("g", "nude woman on a bed"))
    assert version == champion
    assert prediction.suggested.shape == (1,)
    assert not Prediction.objects.exists()


def test_a_web_process_loads_the_champion_as_it_starts(champion):
    bundles._loaded.clear()
    assert bundles.champion_warm() == champion
    assert [version for version, _ in bundles._loaded] == [champion.version]


def test_a_web_process_starts_without_a_loadable_champion(db, caplog):
    ModelVersion.objects.create(version="gone", path="/nowhere", status="champion")
    bundles._loaded.clear()
    assert bundles.champion_warm() is None
    assert "was not loaded at start" in caplog.text
