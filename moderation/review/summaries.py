"""What a moderator reads from a prediction: every model's rating, and where they disagree.

Levels are compared by rating steps (class indices), not by their numeric value: X (8) is one
step above R (4), as XXX (16) is one step above X.
"""

from __future__ import annotations

from dataclasses import dataclass

from moderation.inference.models import Prediction
from moderation.review.queue import level_label
from rating_models.ratings import RATINGS, Rating


@dataclass(frozen=True)
class Verdict:
    """One model's rating of the item; `level` is None when an expert abstained."""

    name: str
    kind: str  # "expert", "voter" or "mlp"
    level: int | None
    confidence: float | None
    steps_below_top: int  # how many rating steps below the highest rating any model gave
    # An expert's: whether the MLP read its features (None for the voter and the MLP).
    read_by_mlp: bool | None = None

    @property
    def abstained(self) -> bool:
        return self.level is None


@dataclass(frozen=True)
class Bar:
    label: str
    level: int
    percent: float
    chosen: bool


@dataclass(frozen=True)
class PredictionSummary:
    prediction: Prediction
    experts: list[Verdict]
    voter: Verdict
    mlp: Verdict
    mlp_bars: list[Bar]
    suggested_level: int
    top_level: int | None
    down_class_notes: list[str]
    mlp_experts: list[str]  # the experts whose features the MLP read

    @property
    def verdicts(self) -> list[Verdict]:
        return [*self.experts, self.voter, self.mlp]


def _index(level: int | None) -> int | None:
    return None if level is None else Rating.parse(level).index


def _confidence(probs: list[float] | None, level: int | None) -> float | None:
    if not probs or level is None:
        return None
    return float(probs[Rating.parse(level).index])


def prediction_summary(prediction: Prediction) -> PredictionSummary:
    """Every expert, the voter and the MLP side by side, with the down-class disagreements:
    each model that rates the item above the suggestion says how far the suggestion falls."""
    raw = [
        (name, "expert", out.get("rating"), _confidence(out.get("probs"), out.get("rating")))
        for name, out in sorted(prediction.experts.items())
    ]
    raw.append(("voter", "voter", prediction.voter_rating, None))
    mlp_probs = [float(p) for p in prediction.mlp_probs]
    raw.append(("MLP", "mlp", prediction.mlp_rating, _confidence(mlp_probs, prediction.mlp_rating)))
    spoken = [_index(level) for _, _, level, _ in raw if level is not None]
    top = max(spoken, default=None)
    read = set(prediction.mlp_experts)
    verdicts = [
        Verdict(
            name,
            kind,
            level,
            conf,
            0 if level is None else top - _index(level),
            (name in read) if kind == "expert" else None,
        )
        for name, kind, level, conf in raw
    ]
    suggested = _index(prediction.suggested_rating)
    notes = []
    for v in verdicts:
        if v.level is not None and _index(v.level) > suggested:
            steps = _index(v.level) - suggested
            notes.append(
                f"{v.name} rates {level_label(v.level)}, the suggestion is "
                f"{level_label(prediction.suggested_rating)}: "
                f"{steps} level{'s' if steps > 1 else ''} lower"
            )
    bars = [
        Bar(r.label, r.level, round(100 * p, 1), r.level == prediction.mlp_rating)
        for r, p in zip(RATINGS, mlp_probs, strict=False)
    ]
    return PredictionSummary(
        prediction=prediction,
        experts=verdicts[:-2],
        voter=verdicts[-2],
        mlp=verdicts[-1],
        mlp_bars=bars,
        suggested_level=prediction.suggested_rating,
        top_level=None if top is None else RATINGS[top].level,
        down_class_notes=notes,
        mlp_experts=list(prediction.mlp_experts),
    )
