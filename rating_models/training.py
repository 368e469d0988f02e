"""What every trained part shares: seeds, device choice, class weights, the early-stopping loop."""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rating_models.ratings import NUM_CLASSES

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU: the same code runs on both."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def class_weights(labels: np.ndarray, mode: str) -> torch.Tensor:
    """Loss weights per class.

    "balanced" weighs each class by n / (K * count), so the 23 X items of a corpus of 6,000
    count as much as its PG items; "sqrt" is its square root (gentler); "none" is uniform.
    Classes absent from the data get the largest weight seen, not infinity.
    """
    counts = np.bincount(labels, minlength=NUM_CLASSES).astype(np.float64)
    if mode == "none":
        return torch.ones(NUM_CLASSES)
    present = counts > 0
    weights = np.zeros(NUM_CLASSES)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    if mode == "sqrt":
        weights = np.sqrt(weights)
    elif mode != "balanced":
        raise ValueError(f"class weighting {mode!r}: expected balanced, sqrt or none")
    weights[~present] = weights[present].max() if present.any() else 1.0
    return torch.tensor(weights, dtype=torch.float32)


def downsample(labels: np.ndarray, *, ratio: float, seed: int) -> np.ndarray:
    """Indices keeping every item of rare classes and at most `ratio` x the second-largest
    class of the largest one (the PG majority)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    cap = int(max(1, ratio * np.sort(counts)[-2]))
    keep = []
    for cls in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == cls)
        if len(rows) > cap:
            rows = rng.choice(rows, size=cap, replace=False)
        keep.append(rows)
    return np.sort(np.concatenate(keep))


@dataclass
class LoopResult:
    best_epoch: int
    best_val_loss: float
    epochs_run: int


def train_with_early_stopping(
    model: nn.Module,
    *,
    train_batches: Callable[[int], Iterable[tuple]],
    val_batches: Callable[[], Iterable[tuple]],
    loss_fn: Callable[[nn.Module, tuple], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    patience: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    progress: bool = False,
    desc: str = "train",
) -> LoopResult:
    """The training loop: one pass per epoch, validation loss after each, keep the best.

    `train_batches(epoch)` yields batches; `loss_fn(model, batch)` returns the loss. The model
    ends with the weights of its best validation epoch.
    """
    best_state, best_loss, best_epoch, stale = None, float("inf"), 0, 0
    epoch = 0
    bar = tqdm(total=epochs, desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in train_batches(epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
        val_loss = evaluate_loss(model, val_batches(), loss_fn)
        bar.update(1)
        bar.set_postfix(val_loss=f"{val_loss:.4f}")
        if val_loss < best_loss - 1e-4:
            best_state, best_loss, best_epoch, stale = (
                copy.deepcopy(model.state_dict()),
                val_loss,
                epoch,
                0,
            )
        else:
            stale += 1
            if stale >= patience:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    log.info("%s: best epoch %d of %d, val loss %.4f", desc, best_epoch, epoch, best_loss)
    return LoopResult(best_epoch=best_epoch, best_val_loss=best_loss, epochs_run=epoch)


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, batches: Iterable[tuple], loss_fn: Callable[[nn.Module, tuple], torch.Tensor]
) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        size = len(batch[-1])
        total += float(loss_fn(model, batch)) * size
        count += size
    return total / max(count, 1)
