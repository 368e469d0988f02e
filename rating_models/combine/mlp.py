"""The multimodal MLP: one classifier over every expert's pre-logit features.

Experts are trained first and frozen; their features are computed once and cached, and the MLP
trains on them. Each expert contributes its (standardised) features and a presence flag; an
abstaining expert contributes zeros and flag 0. Training drops whole modalities at random, so
the same MLP rates a prompt alone (generation time) and a prompt with tags and image
(ingestion).

Only trained weights touch an input: the MLP records which experts were present in its
training rows (`trained`), and an expert it never saw present (the image expert of a bundle
trained on prompts alone) is treated as absent at inference, zeros and flag 0, whatever it says.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from rating_models.experts.base import ExpertOutput
from rating_models.ratings import NUM_CLASSES
from rating_models.training import (
    class_weights,
    pick_device,
    seed_everything,
    train_with_early_stopping,
)


@dataclass(frozen=True)
class ExpertSlot:
    """Where one expert's features sit in the MLP's input."""

    name: str
    modality: str
    feature_size: int


@dataclass
class MLPConfig:
    hidden_size: int = 256
    dropout: float = 0.2
    # Chance that a training row loses one modality (all experts reading it), never its last.
    modality_dropout: float = 0.3
    # Validation loss is checked after every pass over the training rows, or after every
    # `check_rows` rows when a pass is longer; `epochs` and `patience` count these checks, so a
    # large training set (stored features of 100,000 items) is not run for `patience` whole
    # passes after its best. Up to `check_rows` training rows a check is a pass.
    epochs: int = 200
    patience: int = 15
    check_rows: int = 20_000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # The experts were trained with balanced class weights, so their features already lean
    # towards the rare explicit ratings; balancing again in the MLP counts that prior shift
    # twice and floods PG items into X. The square root corrects once, gently.
    class_weighting: str = "sqrt"
    seed: int = 1234
    device: str = "auto"


class MLPNet(nn.Module):
    def __init__(self, input_size: int, config: MLPConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_size, config.hidden_size),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, F) -> (B, 5)


class MultimodalMLP:
    def __init__(self, slots: Sequence[ExpertSlot], config: MLPConfig | None = None) -> None:
        self.slots = list(slots)
        self.config = config or MLPConfig()
        self.device = pick_device(self.config.device)
        self.input_size = sum(s.feature_size + 1 for s in self.slots)
        self.net = MLPNet(self.input_size, self.config).to(self.device)
        # Per-feature standardisation learned from the training rows where the expert spoke.
        self.mean = np.zeros(self.input_size, dtype=np.float32)
        self.std = np.ones(self.input_size, dtype=np.float32)
        # Names of the experts present in at least one training row; None before training.
        self.trained: list[str] | None = None

    def reads(self, name: str) -> bool:
        """Whether the MLP's weights for this expert were trained (an untrained MLP reads all)."""
        return self.trained is None or name in self.trained

    def used(self, outputs: dict[str, ExpertOutput]) -> np.ndarray:
        """(N, slots) bool: which experts' features the MLP reads for each item."""
        columns = [~outputs[slot.name].abstain & self.reads(slot.name) for slot in self.slots]
        if not columns:
            return np.zeros((0, 0), dtype=bool)
        return np.stack(columns, axis=1)

    def inputs(self, outputs: dict[str, ExpertOutput]) -> np.ndarray:
        """Concatenate [features, presence] per expert, in slot order: (N, input_size).

        An expert the MLP never saw present in training counts as absent."""
        blocks = []
        for slot, present in zip(self.slots, self.used(outputs).T, strict=True):
            flag = present.astype(np.float32)[:, None]  # (N, 1)
            blocks.append(outputs[slot.name].features.astype(np.float32) * flag)
            blocks.append(flag)
        return np.concatenate(blocks, axis=1)

    def _read_columns(self) -> np.ndarray:
        """(input_size,) bool: the columns of the experts whose weights were trained."""
        return np.concatenate([np.full(s.feature_size + 1, self.reads(s.name)) for s in self.slots])

    def _slot_presence(self, x: np.ndarray) -> np.ndarray:
        """(N, slots) bool: the presence flags of input rows."""
        flags, start = [], 0
        for slot in self.slots:
            start += slot.feature_size
            flags.append(x[:, start] > 0.5)
            start += 1
        return np.stack(flags, axis=1)

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        presence = self._presence_columns(x)
        z = (x - self.mean) / self.std
        # Absent experts stay exactly zero after standardisation, so "missing" is one point.
        return np.where(presence, z, 0.0).astype(np.float32)

    def _presence_columns(self, x: np.ndarray) -> np.ndarray:
        """(N, input_size) bool: True where the column's expert is present (flags included)."""
        columns, start = [], 0
        for slot in self.slots:
            flag = x[:, start + slot.feature_size] > 0.5
            columns.append(np.repeat(flag[:, None], slot.feature_size + 1, axis=1))
            start += slot.feature_size + 1
        return np.concatenate(columns, axis=1)

    def _drop_modalities(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of `x` (raw or standardised inputs) where each row, with probability
        `modality_dropout`, loses one of its present modalities at random, never its last."""
        x = x.copy()
        modalities = sorted({s.modality for s in self.slots})
        spans: dict[str, list[tuple[int, int]]] = {m: [] for m in modalities}
        start = 0
        for slot in self.slots:
            spans[slot.modality].append((start, start + slot.feature_size + 1))
            start += slot.feature_size + 1
        # (M, N): whether any expert of the modality is present, from the presence flags.
        present = np.stack(
            [np.any([x[:, end - 1] > 0.5 for _, end in spans[m]], axis=0) for m in modalities]
        )
        dropped = np.full(len(x), -1)
        for row in np.flatnonzero(rng.random(len(x)) < self.config.modality_dropout):
            options = np.flatnonzero(present[:, row])
            if len(options) < 2:
                continue
            dropped[row] = options[rng.integers(len(options))]  # the draw rng.choice makes
        for index, modality in enumerate(modalities):
            rows = dropped == index
            for begin, end in spans[modality]:
                x[rows, begin:end] = 0.0
        return x

    def fit(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        *,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Train on cached expert inputs (from `inputs`) and class indices.

        `epochs_run` and `best_epoch` count validation checks (see `MLPConfig.check_rows`).
        """
        if len(x_train) == 0 or len(x_val) == 0:
            raise ValueError(
                f"the MLP needs training and validation rows, got {len(x_train)} and {len(x_val)}"
            )
        seed_everything(self.config.seed)
        seen = self._slot_presence(x_train).any(axis=0)
        self.trained = [slot.name for slot, spoke in zip(self.slots, seen, strict=True) if spoke]
        presence = self._presence_columns(x_train)
        counts = np.maximum(presence.sum(axis=0), 1)
        self.mean = (np.where(presence, x_train, 0).sum(axis=0) / counts).astype(np.float32)
        var = np.where(presence, (x_train - self.mean) ** 2, 0).sum(axis=0) / counts
        self.std = np.sqrt(var).astype(np.float32)
        self.std[self.std < 1e-6] = 1.0
        # Presence flags stay 0/1: they are not standardised.
        flags = np.zeros(self.input_size, dtype=bool)
        start = 0
        for slot in self.slots:
            start += slot.feature_size
            flags[start] = True
            start += 1
        self.mean[flags], self.std[flags] = 0.0, 1.0

        rng = np.random.default_rng(self.config.seed)
        weights = class_weights(y_train, self.config.class_weighting).to(self.device)
        xv = torch.from_numpy(self._standardise(x_val)).to(self.device)
        yv = torch.as_tensor(y_val, dtype=torch.long, device=self.device)
        yt = torch.as_tensor(y_train, dtype=torch.long, device=self.device)

        # Standardised once, not every pass: an absent expert's columns standardise to zeros,
        # so zeroing a dropped modality afterwards gives the same rows as dropping it before.
        passes = self._passes(self._standardise(x_train), yt, rng)
        check = min(len(x_train), max(1, self.config.check_rows))

        def train_batches(epoch: int):
            seen = 0
            while seen < check:
                batch = next(passes)
                seen += len(batch[1])
                yield batch

        def val_batches():
            for start in range(0, len(xv), 1024):
                yield xv[start : start + 1024], yv[start : start + 1024]

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(net(batch[0]), batch[1], weight=weights)

        result = train_with_early_stopping(
            self.net,
            train_batches=train_batches,
            val_batches=val_batches,
            loss_fn=loss_fn,
            optimizer=torch.optim.AdamW(
                self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
            ),
            epochs=self.config.epochs,
            patience=self.config.patience,
            progress=progress,
            desc="mlp",
        )
        self.net.eval()
        return {
            "n_train": len(x_train),
            "trained_experts": self.trained,
            "input_size": self.input_size,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": round(result.best_val_loss, 5),
        }

    def _passes(self, z_train: np.ndarray, y_train: torch.Tensor, rng: np.random.Generator):
        """Training batches without end, pass after pass over the standardised rows."""
        while len(z_train):
            # Fresh modality dropout every pass: each row is seen with different subsets.
            xt = torch.from_numpy(self._drop_modalities(z_train, rng)).to(self.device)
            order = torch.from_numpy(rng.permutation(len(xt)))
            for start in range(0, len(order), self.config.batch_size):
                rows = order[start : start + self.config.batch_size]
                yield xt[rows], y_train[rows]

    @torch.inference_mode()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, input_size) expert inputs -> (N, 5) probabilities."""
        self.net.eval()
        x = np.where(self._read_columns(), x, 0.0).astype(np.float32)  # untrained: absent
        z = torch.from_numpy(self._standardise(x)).to(self.device)
        probs = [F.softmax(self.net(z[i : i + 4096]), dim=-1) for i in range(0, len(z), 4096)]
        if not probs:
            return np.zeros((0, NUM_CLASSES), dtype=np.float32)
        return torch.cat(probs).float().cpu().numpy()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        record = {
            "config": asdict(self.config),
            "slots": [asdict(s) for s in self.slots],
            "trained": self.trained,
        }
        (directory / "mlp.json").write_text(json.dumps(record, indent=2))
        state = {k: v.contiguous().cpu() for k, v in self.net.state_dict().items()}
        state["input.mean"] = torch.from_numpy(self.mean)
        state["input.std"] = torch.from_numpy(self.std)
        save_file(state, directory / "model.safetensors")

    @classmethod
    def load(cls, directory: str | Path, *, device: str | None = None) -> MultimodalMLP:
        directory = Path(directory)
        record = json.loads((directory / "mlp.json").read_text())
        config = MLPConfig(**{**record["config"], **({"device": device} if device else {})})
        mlp = cls([ExpertSlot(**s) for s in record["slots"]], config)
        mlp.trained = record.get("trained")
        state = load_file(directory / "model.safetensors")
        mlp.mean = state.pop("input.mean").numpy()
        mlp.std = state.pop("input.std").numpy()
        mlp.net.load_state_dict(state)
        mlp.net.to(mlp.device).eval()
        return mlp
