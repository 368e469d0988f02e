"""Inference runtimes of the transformer expert (see `rating_models/experts/runtime.py`).

Each runtime is checked against the fp32 torch model it replaces, on the tiny random BERT of
`tiny_backbone`: the same expert saved once and loaded in each runtime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rating_models.examples import Example
from rating_models.experts import ExpertError, build_expert, load_expert
from rating_models.experts import runtime as runtime_module
from rating_models.experts.runtime import CACHE_ENV, cpu_has_bf16_units, resolve
from rating_models.experts.transformer import TransformerExpert
from tests.rating_models.experts.test_transformer import make_expert, toy_examples

RUNTIMES = ["onnx", "onnx-int8", "torch-bf16", "torch-fp16"]
# Largest relative difference from the fp32 pooled encoding that each runtime may make (about
# 1e-7, 1e-2, 1e-4 and 1e-5 measured), and largest difference in probability. int8 has no
# bound on probabilities: how far its small encoding error moves them depends on how sharp the
# randomly trained head is, which varies from run to run.
ENCODING_TOLERANCE = {"onnx": 1e-5, "onnx-int8": 0.05, "torch-bf16": 1e-2, "torch-fp16": 1e-3}
PROBABILITY_TOLERANCE = {"onnx": 1e-5, "torch-bf16": 0.01, "torch-fp16": 2e-3}


@pytest.fixture(scope="module")
def saved_expert(tiny_backbone: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Batches of 4: the items below make several batches, each padded to its own length.
    expert = make_expert(tiny_backbone, lr=1e-2, epochs=60, patience=60, encode_batch_size=4)
    expert.fit(toy_examples(4), toy_examples(1))
    directory = tmp_path_factory.mktemp("saved_expert")
    expert.save(directory)
    return directory


@pytest.fixture(scope="module")
def items() -> list[Example]:
    """Toy items of several lengths, one with a negative prompt, one long, one empty."""
    return [
        *toy_examples(2),
        Example(id="neg", prompt="a cat in a tree, painting", negative_prompt="nude, blurry"),
        Example(id="long", prompt="a dog under a tree, " * 40),
        Example(id="empty", prompt=""),
    ]


def load(directory: Path, runtime: str) -> TransformerExpert:
    return load_expert(directory, device="cpu", runtime=runtime)  # type: ignore[return-value]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_runtime_encodes_as_fp32_torch_within_its_tolerance(
    runtime: str, saved_expert: Path, items: list[Example]
) -> None:
    reference = load(saved_expert, "torch")
    batch = reference._collate(reference._tokenize([reference._pair(e) for e in items]))
    expected = reference._inference_encoder()(batch)  # (N, H)
    pooled = load(saved_expert, runtime)._inference_encoder()(batch)  # (N, H)
    relative = (pooled - expected).norm(dim=1) / expected.norm(dim=1)  # (N,)
    assert relative.max().item() < ENCODING_TOLERANCE[runtime]


@pytest.mark.parametrize("runtime", sorted(PROBABILITY_TOLERANCE))
def test_each_runtime_gives_the_fp32_probabilities_within_its_tolerance(
    runtime: str, saved_expert: Path, items: list[Example]
) -> None:
    reference = load(saved_expert, "torch").predict(items)
    output = load(saved_expert, runtime).predict(items)
    tolerance = PROBABILITY_TOLERANCE[runtime]
    np.testing.assert_allclose(output.probs, reference.probs, rtol=0, atol=tolerance)
    np.testing.assert_array_equal(output.abstain, reference.abstain)


def test_onnx_gives_the_fp32_features_too(saved_expert: Path, items: list[Example]) -> None:
    reference = load(saved_expert, "torch").predict(items)
    output = load(saved_expert, "onnx").predict(items)
    np.testing.assert_allclose(output.features, reference.features, rtol=0, atol=1e-5)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_runtime_rates_the_toy_data_as_fp32_torch_does(
    runtime: str, saved_expert: Path
) -> None:
    toy = toy_examples(4)
    reference = load(saved_expert, "torch").predict(toy).ratings
    ratings = load(saved_expert, runtime).predict(toy).ratings
    np.testing.assert_array_equal(ratings, reference)
    labels = np.array([e.rating.index for e in toy])
    assert (ratings == labels).mean() >= 0.9


def test_an_item_gets_the_same_outputs_alone_as_in_a_padded_batch(
    saved_expert: Path, items: list[Example]
) -> None:
    expert = load(saved_expert, "onnx")
    batched = expert.predict(items)
    for row in (0, len(items) - 2):  # a short toy item and the long one
        alone = expert.predict([items[row]])
        np.testing.assert_allclose(alone.probs[0], batched.probs[row], rtol=0, atol=1e-5)


def test_padding_changes_no_items_encoding_in_the_onnx_graph(saved_expert: Path) -> None:
    expert = load(saved_expert, "onnx")
    encode = expert._inference_encoder()
    encodings = expert._tokenize([("a cat", ""), ("a dog under a tree, " * 10, "nude")])
    together = encode(expert._collate(encodings))  # the short item padded to the long one
    for row, encoding in enumerate(encodings):
        alone = encode(expert._collate([encoding]))
        torch.testing.assert_close(alone[0], together[row], rtol=0, atol=1e-5)


def test_auto_is_fp16_on_cuda_and_bf16_or_fp32_on_the_cpu(
    tiny_backbone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve("auto", torch.device("cuda")) == "torch-fp16"
    assert resolve("torch-bf16", torch.device("cuda")) == "torch-bf16"
    expected = "torch-bf16" if cpu_has_bf16_units() else "torch"
    assert make_expert(tiny_backbone).runtime == expected
    for units, runtime in ((True, "torch-bf16"), (False, "torch")):
        monkeypatch.setattr(runtime_module, "cpu_has_bf16_units", lambda units=units: units)
        assert resolve("auto", torch.device("cpu")) == runtime


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_an_onnx_runtime_is_refused_on_cuda(tiny_backbone: str, runtime: str) -> None:
    with pytest.raises(ExpertError, match="CPU only"):
        make_expert(tiny_backbone, device="cuda", runtime=runtime)


def test_an_unknown_runtime_is_refused(tiny_backbone: str) -> None:
    with pytest.raises(ExpertError, match="runtime 'tensorrt'"):
        make_expert(tiny_backbone, runtime="tensorrt")


def test_load_overrides_the_saved_runtime_and_experts_without_one_ignore_it(
    saved_expert: Path, tmp_path: Path
) -> None:
    assert load(saved_expert, "torch").runtime == "torch"
    assert load(saved_expert, "onnx-int8").runtime == "onnx-int8"
    build_expert("tags", "tag_rules").save(tmp_path)
    assert load_expert(tmp_path, runtime="onnx").name == "tags"


def test_the_exported_graph_is_cached_once_and_shared_by_experts_with_the_same_encoder(
    saved_expert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    load(saved_expert, "onnx")
    files = sorted((tmp_path / "onnx").iterdir())
    assert [f.suffix for f in files] == [".onnx"]
    written = files[0].stat().st_mtime_ns
    load(saved_expert, "onnx")  # a second expert, same encoder
    assert sorted((tmp_path / "onnx").iterdir()) == files
    assert files[0].stat().st_mtime_ns == written
    load(saved_expert, "onnx-int8")  # quantised from the cached fp32 graph
    assert len(list((tmp_path / "onnx").glob("*-int8.onnx"))) == 1


def test_a_finetuned_encoder_gets_a_graph_of_its_own(
    tiny_backbone: str, saved_expert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    load(saved_expert, "onnx")
    tuned = make_expert(tiny_backbone, mode="finetune", epochs=1, patience=1, encoder_lr=1e-3)
    tuned.fit(toy_examples(2), toy_examples(1))
    tuned.save(tmp_path / "tuned")
    reference = load(tmp_path / "tuned", "torch").predict(toy_examples(1))
    output = load(tmp_path / "tuned", "onnx").predict(toy_examples(1))
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 2
    np.testing.assert_allclose(output.probs, reference.probs, rtol=0, atol=1e-5)
