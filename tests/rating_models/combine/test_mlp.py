import json

import numpy as np
import pytest

from rating_models.combine.mlp import ExpertSlot, MLPConfig, MultimodalMLP
from rating_models.experts.base import ExpertOutput

SLOTS = [ExpertSlot("text", "prompt", 4), ExpertSlot("tags", "tags", 3)]


def outputs(n: int, *, tags_present: bool = True, seed: int = 0) -> dict[str, ExpertOutput]:
    rng = np.random.default_rng(seed)
    text = ExpertOutput(
        np.full((n, 5), 0.2, np.float32),
        rng.normal(size=(n, 4)).astype(np.float32),
        np.zeros(n, bool),
    )
    tags = ExpertOutput(
        np.full((n, 5), 0.2, np.float32),
        rng.normal(size=(n, 3)).astype(np.float32),
        np.full(n, not tags_present),
    )
    return {"text": text, "tags": tags}


def test_inputs_concatenate_features_and_presence_flags_in_slot_order():
    mlp = MultimodalMLP(SLOTS)
    out = outputs(2, tags_present=False)
    x = mlp.inputs(out)
    assert x.shape == (2, 4 + 1 + 3 + 1)
    np.testing.assert_array_equal(x[:, :4], out["text"].features)
    assert x[:, 4].tolist() == [1.0, 1.0]
    # An abstaining expert contributes zeros and a zero flag, whatever its rows held.
    assert not x[:, 5:].any()


def test_it_learns_from_features_and_rates_items_with_a_modality_missing():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 5, size=n)
    out = outputs(n)
    out["text"].features[:, 0] = y + rng.normal(scale=0.1, size=n)  # the text tells the class
    mlp = MultimodalMLP(SLOTS, MLPConfig(epochs=150, patience=150, seed=3))
    x = mlp.inputs(out)
    mlp.fit(x, y, x, y)
    assert (mlp.predict_proba(x).argmax(axis=1) == y).mean() > 0.9
    prompt_only = dict(out, tags=ExpertOutput.empty(n, 3))
    assert (mlp.predict_proba(mlp.inputs(prompt_only)).argmax(axis=1) == y).mean() > 0.9


def test_modality_dropout_never_drops_the_last_present_modality():
    mlp = MultimodalMLP(SLOTS, MLPConfig(modality_dropout=1.0))
    x = mlp.inputs(outputs(50))
    dropped = mlp._drop_modalities(x, np.random.default_rng(0))
    text_flag, tags_flag = dropped[:, 4], dropped[:, 8]
    assert ((text_flag + tags_flag) == 1).all()  # exactly one of two modalities dropped
    prompt_only = mlp.inputs(outputs(50, tags_present=False))
    np.testing.assert_array_equal(
        mlp._drop_modalities(prompt_only, np.random.default_rng(0)), prompt_only
    )


def test_save_and_load_predict_identically(tmp_path):
    y = np.arange(50) % 5
    mlp = MultimodalMLP(SLOTS, MLPConfig(epochs=3))
    x = mlp.inputs(outputs(50))
    mlp.fit(x, y, x, y)
    mlp.save(tmp_path / "mlp")
    loaded = MultimodalMLP.load(tmp_path / "mlp")
    np.testing.assert_array_equal(mlp.predict_proba(x), loaded.predict_proba(x))


def training_steps(n: int, config: MLPConfig) -> int:
    """Training batches one fit runs on `n` rows."""
    mlp = MultimodalMLP(SLOTS, config)
    steps = []
    mlp.net.register_forward_hook(lambda net, *_: steps.append(1) if net.training else None)
    x = mlp.inputs(outputs(n))
    y = np.arange(n) % 5
    mlp.fit(x, y, x[:20], y[:20])
    return len(steps)


def test_a_pass_over_the_training_rows_is_one_check_up_to_check_rows():
    config = MLPConfig(epochs=3, patience=10, batch_size=50, check_rows=400)
    assert training_steps(400, config) == 3 * 8


def test_a_larger_training_set_is_checked_every_check_rows_rows():
    config = MLPConfig(epochs=3, patience=10, batch_size=50, check_rows=100)
    assert training_steps(400, config) == 3 * 2  # three checks of 100 rows, not three passes


# -- trained slots: the MLP reads only experts present in its training rows --------------------


def fitted(*, tags_present: bool) -> tuple[MultimodalMLP, dict[str, ExpertOutput]]:
    y = np.arange(60) % 5
    mlp = MultimodalMLP(SLOTS, MLPConfig(hidden_size=8, epochs=3))
    x = mlp.inputs(outputs(60, tags_present=tags_present))
    mlp.fit(x, y, x, y)
    return mlp, outputs(10, tags_present=True, seed=5)


def test_an_untrained_mlp_reads_every_expert_that_speaks():
    mlp = MultimodalMLP(SLOTS)
    assert mlp.trained is None
    assert mlp.used(outputs(3)).all()
    assert mlp.used(outputs(3, tags_present=False)).tolist() == [[True, False]] * 3


def test_an_expert_present_in_training_is_read():
    mlp, out = fitted(tags_present=True)
    assert mlp.trained == ["text", "tags"]
    assert mlp.used(out).all()
    absent = dict(out, tags=ExpertOutput.empty(10, 3))
    assert not np.array_equal(
        mlp.predict_proba(mlp.inputs(out)), mlp.predict_proba(mlp.inputs(absent))
    )


def test_an_expert_never_present_in_training_counts_as_absent_whatever_it_says():
    mlp, out = fitted(tags_present=False)
    assert mlp.trained == ["text"]
    assert mlp.used(out).tolist() == [[True, False]] * 10
    absent = dict(out, tags=ExpertOutput.empty(10, 3))
    x = mlp.inputs(out)
    np.testing.assert_array_equal(x, mlp.inputs(absent))
    assert not x[:, 5:].any()  # zeros and flag 0
    # predict_proba masks raw inputs too: features and a flag of 1 change nothing.
    raw = x.copy()
    raw[:, 5:8], raw[:, 8] = 40.0, 1.0
    np.testing.assert_array_equal(mlp.predict_proba(raw), mlp.predict_proba(x))


def test_save_and_load_keep_the_trained_experts(tmp_path):
    mlp, out = fitted(tags_present=False)
    mlp.save(tmp_path / "mlp")
    assert json.loads((tmp_path / "mlp" / "mlp.json").read_text())["trained"] == ["text"]
    loaded = MultimodalMLP.load(tmp_path / "mlp")
    assert loaded.trained == ["text"]
    np.testing.assert_array_equal(loaded.used(out), mlp.used(out))
    np.testing.assert_array_equal(
        loaded.predict_proba(loaded.inputs(out)), mlp.predict_proba(mlp.inputs(out))
    )


def test_the_fit_report_names_the_trained_experts():
    y = np.arange(30) % 5
    mlp = MultimodalMLP(SLOTS, MLPConfig(hidden_size=8, epochs=2))
    x = mlp.inputs(outputs(30, tags_present=False))
    assert mlp.fit(x, y, x, y)["trained_experts"] == ["text"]


def test_an_mlp_without_training_or_validation_rows_says_so():
    mlp = MultimodalMLP([ExpertSlot("a", "prompt", 2)], MLPConfig(epochs=1))
    rows = np.zeros((3, 3), dtype=np.float32)
    labels = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="training and validation rows, got 0 and 3"):
        mlp.fit(rows[:0], labels[:0], rows, labels)
    with pytest.raises(ValueError, match="got 3 and 0"):
        mlp.fit(rows, labels, rows[:0], labels[:0])
