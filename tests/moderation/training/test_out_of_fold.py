"""An MLP-only retrain learns from the experts' out-of-fold outputs for the items they were
trained on (kept in the champion's bundle), from stored predictions for the others: never
from the experts' in-sample outputs."""

from pathlib import Path

import numpy as np
import pytest

from moderation.inference.bundles import bundle_for
from moderation.inference.models import Prediction
from moderation.media.services import item_create
from moderation.training import candidates, features, runs, selectors, services
from moderation.training.models import TrainingRun
from rating_models.combine.mlp import MultimodalMLP
from rating_models.stacking import OUT_OF_FOLD_FILE, read_out_of_fold
from tests.rating_models.bundles import toy_examples

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus_items(labelled):
    """The champion's own training examples, imported as the corpus import does: their
    corpus id is the item's external id. Nothing predicts them (no worker runs)."""
    items = []
    for example in toy_examples():
        item, _ = item_create(
            prompt=example.prompt,
            tags=[list(t) for t in example.tags],
            source="corpus",
            external_id=example.id,
            label=example.rating.level,
            split="train",
        )
        items.append(item)
    return items


@pytest.fixture
def fit_rows(monkeypatch):
    """What the MLP is fitted on, as the run hands it over."""
    seen = {}
    fit = MultimodalMLP.fit

    def spy(self, x_train, y_train, x_val, y_val, **kwargs):
        seen.update(x_train=x_train.copy(), x_val=x_val.copy(), mlp=self)
        return fit(self, x_train, y_train, x_val, y_val, **kwargs)

    monkeypatch.setattr(MultimodalMLP, "fit", spy)
    return seen


def run_mlp_retrain(settings) -> TrainingRun:
    settings.GATE_MIN_EXPLICIT = 0
    run = services.training_run_execute(run_id=runs.training_run_start().pk)
    assert run.state == TrainingRun.State.SUCCEEDED, run.reason
    return run


def test_the_champions_training_items_are_read_from_its_out_of_fold_outputs(
    corpus_items, labelled, champion, fit_rows, settings
):
    out_of_fold = read_out_of_fold(Path(champion.path))
    assert sorted(out_of_fold.ids) == sorted(e.id for e in toy_examples())

    run = run_mlp_retrain(settings)

    # Their stored predictions were never needed: none was made.
    assert not Prediction.objects.filter(item__in=corpus_items).exists()
    assert f"{len(corpus_items)} rows from the champion's out-of-fold outputs" in run.log
    assert f"{len(labelled) // 2} from stored predictions" in run.log
    # The rows are the out-of-fold outputs, as the MLP's own `inputs` builds them.
    bundle = bundle_for(champion)
    fresh = MultimodalMLP(bundle.mlp.slots, bundle.mlp.config)
    fitted = [i for i in selectors.training_items() if not selectors.is_validation(i.uid)]
    held_out = [i for i in selectors.training_items() if selectors.is_validation(i.uid)]
    for part, items in (("x_train", fitted), ("x_val", held_out)):
        x = fit_rows[part]
        assert len(x) == len(items)
        rows = [k for k, item in enumerate(items) if item.source == "corpus"]
        if rows:
            ids = [items[k].external_id for k in rows]
            np.testing.assert_array_equal(x[rows], fresh.inputs(out_of_fold.rows(ids)))
        stored = [k for k, item in enumerate(items) if item.source != "corpus"]
        if stored:
            expected, _ = features.stored_inputs(bundle, champion, [items[k] for k in stored])
            np.testing.assert_array_equal(x[stored], expected)
        # Not the in-sample outputs the experts give on their own training items now.
        if rows:
            in_sample = bundle.mlp.inputs(
                bundle.predict([candidates.labelled_example(items[k]) for k in rows]).experts
            )
            assert not np.allclose(x[rows], in_sample, atol=1e-2)

    # The candidate keeps the same outputs, for the next MLP retrain.
    candidate = Path(run.candidate.path)
    assert (candidate / OUT_OF_FOLD_FILE).is_file()
    assert read_out_of_fold(candidate).ids == out_of_fold.ids
    stacking = run.candidate.manifest["stacking"]
    assert stacking["mlp_rows"] == {
        "out_of_fold": len(corpus_items),
        "stored": len(labelled) // 2,
    }
    assert stacking["mlp_reads"] == bundle_for(run.candidate).mlp.trained
    assert run.candidate.manifest["config"]["experts"] == champion.manifest["config"]["experts"]


def test_an_items_uid_finds_its_out_of_fold_row_first(labelled, champion):
    out_of_fold = read_out_of_fold(Path(champion.path))
    item, corpus, twin_a, twin_b, other = labelled[:5]
    out_of_fold.ids[0] = str(item.uid)
    corpus.external_id = out_of_fold.ids[1]
    twin_a.external_id = twin_b.external_id = out_of_fold.ids[2]  # ambiguous: neither
    ids = features.out_of_fold_ids(out_of_fold, [item, corpus, twin_a, twin_b, other])
    assert ids == [str(item.uid), out_of_fold.ids[1], None, None, None]


def test_without_out_of_fold_outputs_the_retrain_warns_and_reads_stored_predictions(
    corpus_items, champion, monkeypatch, settings, caplog
):
    monkeypatch.setattr(candidates, "read_out_of_fold", lambda directory: None)

    run = run_mlp_retrain(settings)

    assert "warning: the champion's bundle keeps no out-of-fold outputs" in run.log
    assert "keeps no out-of-fold outputs" in caplog.text
    assert "0 rows from the champion's out-of-fold outputs" in run.log
    # As before: the champion predicted its own training items, and the MLP read that.
    assert Prediction.objects.filter(item__in=corpus_items, model_version=champion).count() == (
        len(corpus_items)
    )
    assert not (Path(run.candidate.path) / OUT_OF_FOLD_FILE).exists()
