"""Bundle configurations: the presets and what a `--config` file may override."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rating_models.combine.voter import check_membership

# The LSTM is fitted k + 1 times by out-of-fold stacking: at half the default width and with a
# short patience one fit takes under a minute on 2 cores instead of about two, which keeps
# `make bundle` within its 10 minutes. A choice made for time, not by cross-validation.
LSTM_FAST = {
    "embedding_size": 64,
    "hidden_size": 64,
    "batch_size": 128,
    "lr": 3e-3,
    "epochs": 12,
    "patience": 2,
}


def _experts(mode: str) -> list[dict[str, Any]]:
    return [
        {"name": "tag_rules", "kind": "tag_rules", "config": {}},
        {"name": "lstm", "kind": "lstm", "config": LSTM_FAST},
        {"name": "text", "kind": "transformer", "config": {"mode": mode}},
        {"name": "text_tags", "kind": "transformer", "config": {"mode": mode, "with_tags": True}},
        {"name": "image", "kind": "image", "config": {}},
        {"name": "ngram", "kind": "ngram", "config": {}},
    ]


# "fast": frozen encoders with trained heads, minutes on a laptop CPU.
# "full": the transformer experts are fine-tuned end to end, for GPU workers. Both default to
# the offline MiniLM backbone; a production backbone is a setting (`--config`).
PRESETS: dict[str, dict[str, Any]] = {
    preset: {"experts": _experts(mode), "voter": None, "mlp": {}, "suggested": "bounded"}
    for preset, mode in (("fast", "frozen"), ("full", "finetune"))
}


class ConfigError(ValueError):
    """A bundle configuration that cannot be trained."""


@dataclass
class BundleConfig:
    experts: list[dict[str, Any]]
    # The experts that vote; None: every expert. Their rank order (which one sits out when an
    # even number speak) comes from cross-validation when the bundle is trained.
    voter: list[str] | None = None
    mlp: dict[str, Any] = field(default_factory=dict)
    suggested: str = "bounded"
    # "bounded": the suggestion whose expected DCM rate is at most `alpha` (rating_models.risk),
    # and whose severe DCM rate is at most `severe_alpha` where the explicit items allow.
    alpha: float = 0.03
    severe_alpha: float | None = 0.01
    # Folds of out-of-fold stacking: each expert is fitted this many times more.
    folds: int = 5
    # The MLP reads image experts only when at least this many training items have an image
    # and a rating; below it their weights would be noise, and images go through the voter.
    min_image_labels: int = 50
    seed: int = 1234
    # What `rating-models select` chose and why (its figures); copied into the manifest.
    selection: dict[str, Any] | None = None

    @classmethod
    def from_preset(cls, preset: str, overrides: dict[str, Any] | None = None) -> BundleConfig:
        """A preset, with any top-level key replaced by `overrides` (a `--config` file)."""
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}")
        merged = copy.deepcopy(PRESETS[preset])
        known = set(merged) | {
            "folds",
            "min_image_labels",
            "seed",
            "selection",
            "alpha",
            "severe_alpha",
        }
        unknown = set(overrides or {}) - known
        if unknown:
            raise ConfigError(
                f"unknown configuration keys {sorted(unknown)}; known: {sorted(known)}"
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
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds: expected an integer of at least 2, got {self.folds!r}")
        for name in ("alpha", "severe_alpha"):
            value = getattr(self, name)
            if value is None and name == "severe_alpha":
                continue
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"{name}: expected a share between 0 and 1, got {value!r}")
        if not isinstance(self.min_image_labels, int) or self.min_image_labels < 1:
            raise ConfigError(
                f"min_image_labels: expected a positive integer, got {self.min_image_labels!r}"
            )

    def describe(self) -> dict[str, Any]:
        """What the manifest records (and a `--config` file reproduces)."""
        return {
            "experts": self.experts,
            "voter": self.voter,
            "mlp": self.mlp,
            "suggested": self.suggested,
            "alpha": self.alpha,
            "severe_alpha": self.severe_alpha,
            "folds": self.folds,
            "min_image_labels": self.min_image_labels,
            "seed": self.seed,
        }
