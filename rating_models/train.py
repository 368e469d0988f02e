"""Training a bundle: experts first, then their frozen features, then the MLP.

Stages, in order: configuration, data, experts (each fits on train with val for early
stopping), features (every expert predicts train and val once; the MLP trains on this cache),
MLP, optional evaluation on a test split, save.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rating_models.bundle import Bundle
from rating_models.combine.mlp import ExpertSlot, MLPConfig, MultimodalMLP
from rating_models.combine.voter import check_membership
from rating_models.examples import Example, fingerprint, rated
from rating_models.experts import build_expert

log = logging.getLogger(__name__)

# "fast": frozen encoders with trained heads, minutes on a laptop CPU.
# "full": the transformer experts are fine-tuned end to end, for GPU workers. Both default to
# the offline MiniLM backbone; a production backbone is a setting (`--config`).
PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "experts": [
            {"name": "tag_rules", "kind": "tag_rules", "config": {}},
            {"name": "lstm", "kind": "lstm", "config": {}},
            {"name": "text", "kind": "transformer", "config": {"mode": "frozen"}},
            {
                "name": "text_tags",
                "kind": "transformer",
                "config": {"mode": "frozen", "with_tags": True},
            },
            {"name": "image", "kind": "image", "config": {}},
        ],
        "voter": None,
        "mlp": {},
        "suggested": "max",
    },
    "full": {
        "experts": [
            {"name": "tag_rules", "kind": "tag_rules", "config": {}},
            {"name": "lstm", "kind": "lstm", "config": {}},
            {"name": "text", "kind": "transformer", "config": {"mode": "finetune"}},
            {
                "name": "text_tags",
                "kind": "transformer",
                "config": {"mode": "finetune", "with_tags": True},
            },
            {"name": "image", "kind": "image", "config": {}},
        ],
        "voter": None,
        "mlp": {},
        "suggested": "max",
    },
}


class ConfigError(ValueError):
    """A bundle configuration that cannot be trained."""


@dataclass
class BundleConfig:
    experts: list[dict[str, Any]]
    voter: list[str] | None = None  # None: every expert votes
    mlp: dict[str, Any] = field(default_factory=dict)
    suggested: str = "max"

    @classmethod
    def from_preset(cls, preset: str, overrides: dict[str, Any] | None = None) -> BundleConfig:
        """A preset, with any top-level key replaced by `overrides` (a `--config` file)."""
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}")
        merged = copy.deepcopy(PRESETS[preset])
        unknown = set(overrides or {}) - set(merged)
        if unknown:
            raise ConfigError(
                f"unknown configuration keys {sorted(unknown)}; known: {sorted(merged)}"
            )
        merged.update(copy.deepcopy(overrides or {}))
        config = cls(**merged)
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str | Path, *, preset: str = "fast") -> BundleConfig:
        try:
            overrides = json.loads(Path(path).read_text())
        except OSError as error:
            raise ConfigError(f"{path}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: invalid JSON ({error})") from None
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_preset(overrides.pop("preset", preset), overrides)

    @property
    def voter_members(self) -> list[str]:
        return self.voter if self.voter is not None else [e["name"] for e in self.experts]

    def validate(self) -> None:
        names = [e.get("name") for e in self.experts]
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise ConfigError("every expert needs a name")
        if len(set(names)) != len(names):
            raise ConfigError(f"expert names must be distinct: {names}")
        try:
            check_membership(self.voter_members, names)
        except ValueError as error:
            raise ConfigError(str(error)) from None


def train_bundle(
    train: Sequence[Example],
    val: Sequence[Example],
    *,
    config: BundleConfig,
    out: str | Path | None = None,
    test: Sequence[Example] | None = None,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> Bundle:
    """Train every expert, then the MLP on their frozen features; save to `out` if given.

    `on_stage` hears each stage as it begins: "experts", then "expert:<name>" before each
    expert, "features", "mlp", and with test data "evaluation"; then "save" with `out`.
    """
    stage = on_stage or (lambda name: log.info("stage: %s", name))
    config.validate()
    train, val = rated(train), rated(val)
    if not train or not val:
        raise ConfigError("training needs rated examples in both the training and validation set")
    counts = Counter(e.rating.label for e in train)
    log.info(
        "training a bundle: %d train items %s, %d validation items, experts %s",
        len(train),
        dict(sorted(counts.items())),
        len(val),
        [e["name"] for e in config.experts],
    )

    stage("experts")
    experts, reports = {}, {}
    for spec in config.experts:
        stage(f"expert:{spec['name']}")
        expert = build_expert(spec["name"], spec["kind"], spec.get("config"))
        reports[expert.name] = expert.fit(train, val, progress=progress)
        experts[expert.name] = expert

    stage("features")
    train_outputs = {n: e.predict(train) for n, e in experts.items()}
    val_outputs = {n: e.predict(val) for n, e in experts.items()}

    stage("mlp")
    mlp = MultimodalMLP(
        [ExpertSlot(n, e.modality, e.feature_size) for n, e in experts.items()],
        MLPConfig(**config.mlp),
    )
    y_train = np.array([e.rating.index for e in train])
    y_val = np.array([e.rating.index for e in val])
    reports["mlp"] = mlp.fit(
        mlp.inputs(train_outputs), y_train, mlp.inputs(val_outputs), y_val, progress=progress
    )

    bundle = Bundle(experts, config.voter_members, mlp, config.suggested)
    bundle.manifest = {
        "training_data": {
            "fingerprint": fingerprint(train),
            "validation_fingerprint": fingerprint(val),
            "n_train": len(train),
            "n_val": len(val),
            "class_counts": dict(sorted(counts.items())),
        },
        "training": reports,
        "config": {
            "experts": config.experts,
            "voter": config.voter,
            "mlp": config.mlp,
            "suggested": config.suggested,
        },
        "test_metrics": None,
    }
    if test is not None:
        stage("evaluation")
        from rating_models.evaluation import evaluate_bundle

        report = evaluate_bundle(bundle, test, progress=progress)
        bundle.manifest["test_metrics"] = report
        bundle.manifest["test_data"] = {"fingerprint": fingerprint(rated(test)), "n": report["n"]}
    if out is not None:
        stage("save")
        bundle.save(out)
    return bundle
