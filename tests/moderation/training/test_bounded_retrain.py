"""An MLP retrain of a champion whose suggestion is the bounded-DCM rule gives the new MLP its
own rule, calibrated at the champion's α, and keeps its calibration items."""

from __future__ import annotations

import pytest

from moderation.inference import bundles
from moderation.inference.services import predictions_create
from moderation.inference.versions import model_version_register
from moderation.training import runs, services
from rating_models.bundle import Bundle
from rating_models.calibration import read_calibration
from rating_models.config import BundleConfig
from rating_models.train import train_bundle
from tests.moderation.training.conftest import labelled_item
from tests.rating_models.bundles import EXPLICIT, SAFE, lstm_bundle_config, toy_examples

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def bounded_bundle_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bounded-champion") / "bundle"
    overrides = {**lstm_bundle_config(), "suggested": "bounded", "alpha": 0.1}
    config = BundleConfig.from_preset("fast", overrides)
    train_bundle(toy_examples(), toy_examples(1, "v"), config=config, out=directory)
    return directory


def test_an_mlp_retrain_of_a_bounded_champion_calibrates_the_new_mlps_rule(
    bounded_bundle_dir, settings
):
    settings.GATE_MIN_EXPLICIT = 0
    settings.GATE_F1_TOLERANCE = settings.GATE_DCM_TOLERANCE = 1.0
    settings.GATE_SEVERE_TOLERANCE = 100
    champion = model_version_register(path=bounded_bundle_dir, promote=True)
    items = []
    for n in range(3):
        for split in ("train", "test"):
            items += [labelled_item(f"{p} {n}", 1, split=split) for p in SAFE]
            items += [labelled_item(f"{p} {n}", 8, split=split) for p in EXPLICIT]
    predictions_create(item_ids=[i.pk for i in items])

    run = services.training_run_execute(run_id=runs.training_run_start().pk)

    assert run.state == "succeeded", run.reason
    candidate = Bundle.load(bundles.bundle_path(run.candidate))
    assert candidate.suggested == "bounded"
    assert candidate.rule.alpha == 0.1 and candidate.rule.n == run.n_train
    assert candidate.manifest["calibration"]["chosen"]["alpha"] == 0.1
    calibration = read_calibration(bundles.bundle_path(run.candidate))
    assert calibration is not None and len(calibration) == run.n_train
    assert champion.version != candidate.version
