"""Scoring a bundle on rated examples: every expert, the voter, the MLP and the suggestion."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from rating_models.bundle import Bundle, BundlePrediction
from rating_models.calibration import CalibrationSet, tradeoff_rows
from rating_models.examples import Example, rated
from rating_models.experts import ExpertOutput
from rating_models.metrics import model_report
from rating_models.risk import automation


def evaluate_bundle(
    bundle: Bundle,
    examples: Sequence[Example],
    *,
    by: str | None = None,
    bootstrap: int = 0,
    progress: bool = False,
    outputs: dict[str, ExpertOutput] | None = None,
    calibration: CalibrationSet | None = None,
) -> dict[str, Any]:
    """The evaluation report (see `rating-models evaluate --json`).

    Blocked and unlabelled examples are not ratings and are only counted. An expert is scored
    on the items it did not abstain on; its `n` says how many. With `bootstrap` > 0 every
    model also gets `intervals`: 95% bootstrap intervals over that many resamples.
    `outputs`: the bundle's experts' outputs on `examples`, computed before (stored features),
    so that they do not run again (`Bundle.predict_from_outputs`). `calibration`: a bounded
    bundle's calibration items; the report then has `tradeoff`, what each α costs here. A
    bounded bundle's report has `automation`: the share it publishes unreviewed, and the DCM
    among exactly those items.
    """
    scored = rated(examples)
    if outputs is None:
        prediction = bundle.predict(scored, progress=progress)
    else:
        rows = [i for i, e in enumerate(examples) if e.rating is not None]  # as `rated` keeps
        taken = {name: out.take(rows) for name, out in outputs.items()}
        prediction = bundle.predict_from_outputs(scored, taken)
    y_true = np.array([e.rating.index for e in scored], dtype=np.int64)
    report = _report(bundle, prediction, y_true, bootstrap)
    report["excluded"] = len(examples) - len(scored)
    if prediction.auto_publish is not None:
        report["automation"] = automation(prediction.auto_publish, prediction.suggested, y_true)
    if calibration is not None and bundle.rule is not None:
        report["tradeoff"] = tradeoff_rows(
            calibration,
            bundle.rule,
            prediction.mlp_probs,
            prediction.voter,
            y_true,
            flagged=prediction.flagged,
            alarms=prediction.explicit_alarms(),
        )
    if by is not None:
        groups: dict[str, list[int]] = defaultdict(list)
        for row, example in enumerate(scored):
            groups[str(getattr(example, by))].append(row)
        report[f"by_{by}"] = {
            value: _report(bundle, prediction.take(rows), y_true[rows], bootstrap)
            for value, rows in sorted(groups.items())
        }
    return report


def _report(
    bundle: Bundle, prediction: BundlePrediction, y_true: np.ndarray, bootstrap: int
) -> dict[str, Any]:
    models = {}
    for name in [*bundle.experts, "voter", "mlp"]:
        predicted = prediction.ratings(name)
        spoke = predicted >= 0
        models[name] = model_report(y_true[spoke], predicted[spoke], bootstrap)
        models[name]["abstained"] = int((~spoke).sum())
    sizes = np.bincount(prediction.voters, minlength=len(bundle.voter) + 1)
    return {
        "n": len(y_true),
        # How many items the voter rated with 1, 3, 5 ... experts (0: every expert abstained).
        "voter_panel_sizes": {str(k): int(c) for k, c in enumerate(sizes) if c},
        "suggestion_policy": bundle.suggested,
        **model_report(y_true, prediction.suggested, bootstrap),
        "models": models,
    }
