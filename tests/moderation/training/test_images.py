"""The MLP reads the image expert only once MIN_IMAGE_LABELS labelled training images exist;
until then the image expert speaks through the voter, and predictions say whom the MLP read.

End to end: items with small Pillow-made images go in through the ingestion service, the
champion (tag rules, two LSTMs and the packaged Open-NSFW image expert) predicts them, a retrain
runs, and the candidate's predictions are stored as a worker stores them.
"""

import pytest
from django.urls import reverse

from moderation.inference.bundles import bundle_for
from moderation.inference.models import Prediction
from moderation.inference.services import predictions_create
from moderation.training import runs, services
from moderation.training.models import TrainingRun
from tests.moderation.training.conftest import fitted_images

pytestmark = pytest.mark.django_db


def retrain(mode: str, settings) -> TrainingRun:
    settings.GATE_MIN_EXPLICIT = 0
    run = services.training_run_execute(run_id=runs.training_run_start(mode=mode).pk)
    assert run.state == TrainingRun.State.SUCCEEDED, run.reason
    return run


def candidate_predictions(run: TrainingRun, items) -> list[Prediction]:
    predictions_create(item_ids=[i.pk for i in items], version=run.candidate)
    return list(Prediction.objects.filter(model_version=run.candidate).select_related("item"))


def test_the_champion_trained_without_images_does_not_read_its_image_expert(
    labelled_pictures, image_champion
):
    assert "image" not in bundle_for(image_champion).mlp.trained
    pictures = Prediction.objects.filter(model_version=image_champion).exclude(item__image="")
    assert pictures.exists()
    for prediction in pictures:
        assert prediction.experts["image"]["rating"] is not None  # it rated the image
        assert "image" not in prediction.mlp_experts  # the MLP did not read it
        assert set(prediction.mlp_experts) <= {"tag_rules", "lstm", "lstm_tags"}


@pytest.mark.parametrize("mode", [TrainingRun.Mode.FULL, TrainingRun.Mode.MLP])
def test_with_enough_labelled_images_the_retrained_mlp_reads_the_image_expert(
    labelled_pictures, settings, mode
):
    settings.MIN_IMAGE_LABELS = fitted_images()  # at the minimum
    assert settings.MIN_IMAGE_LABELS > 0

    run = retrain(mode, settings)

    assert "image" in bundle_for(run.candidate).mlp.trained
    assert "image" in run.candidate.manifest["stacking"]["mlp_reads"]
    assert run.candidate.manifest["training_data"]["n_images"] == settings.MIN_IMAGE_LABELS
    assert "the MLP reads images" in run.log
    for prediction in candidate_predictions(run, labelled_pictures):
        if prediction.item.image:
            assert prediction.experts["image"]["rating"] is not None
            assert "image" in prediction.mlp_experts, prediction.item
        else:
            assert prediction.experts["image"]["rating"] is None
            assert "image" not in prediction.mlp_experts


@pytest.mark.parametrize("mode", [TrainingRun.Mode.FULL, TrainingRun.Mode.MLP])
def test_with_too_few_labelled_images_the_image_expert_speaks_through_the_voter_only(
    labelled_pictures, settings, mode
):
    settings.MIN_IMAGE_LABELS = fitted_images() + 1  # one short

    run = retrain(mode, settings)

    bundle = bundle_for(run.candidate)
    assert "image" not in bundle.mlp.trained
    assert {"tag_rules", "lstm"} <= set(bundle.mlp.trained)
    assert "image" not in run.candidate.manifest["stacking"]["mlp_reads"]
    assert "image" in bundle.voter  # still a voter
    assert "fewer than MIN_IMAGE_LABELS" in run.log
    pictures = [p for p in candidate_predictions(run, labelled_pictures) if p.item.image]
    assert pictures
    for prediction in pictures:
        assert prediction.experts["image"]["rating"] is not None  # its own rating is stored
        assert "image" not in prediction.mlp_experts
        assert prediction.mlp_experts  # the text experts are read


def test_the_training_page_counts_labelled_images_against_the_minimum(
    labelled_pictures, carol_client, settings
):
    fitted = fitted_images()
    settings.MIN_IMAGE_LABELS = fitted + 1
    page = carol_client.get(reverse("training:runs")).text
    assert '<strong class="images-labelled">12</strong> labelled training items have an image' in (
        page
    )
    assert f'<strong class="images-fitted">{fitted}</strong>' in page
    assert f'<strong class="images-minimum">{fitted + 1}</strong>' in page
    assert "MIN_IMAGE_LABELS" in page
    assert 'data-reads-images="false"' in page and "does not read images" in page
    # The champion was trained on prompts alone.
    assert "The champion's MLP" in page and "tag_rules, lstm, lstm_tags" in page

    settings.MIN_IMAGE_LABELS = fitted
    page = carol_client.get(reverse("training:runs")).text
    assert 'data-reads-images="true"' in page and "<strong>reads images</strong>" in page
