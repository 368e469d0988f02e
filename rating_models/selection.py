"""Model selection by k-fold cross-validation over train + val; the test split is never read.

The validation split alone is too small to choose anything by (four explicit items, no X), so
every choice is scored on out-of-fold predictions over train + val:

1. Experts. Each expert (and each setting in `GRID` for its kind) is fitted k times, each time
   without one fold (a stratified tenth of the rest held out for early stopping), and rates the
   left-out fold. The setting with the best out-of-fold macro-F1 is kept, its outputs too.
2. Combiners, from those outputs: the MLP under each class weighting, cross-validated on the
   same folds (it never sees the fold it rates); the voter's panel, all members or all but the
   weakest; the suggested rating's policy (the more restrictive of voter and MLP, or either).
3. The rule, DCM first, against the n-gram expert (the strong baseline) in the same folds:
   the MLP and the voter take the best macro-F1 among the choices whose DCM rate is below the
   baseline's; the suggestion the best macro-F1 among those at most half the baseline's DCM
   rate. Where no choice qualifies, the lowest DCM rate wins.
4. A bounded suggestion (`suggested: bounded`) is kept: its DCM rate is the admin's α, not a
   choice. α does not bound the severe DCM (too few explicit items) and the rule pays for its
   bound in over-rating, so the MLP's class weighting is the one whose bounded rule, calibrated
   on the other folds' out-of-fold probabilities, lets the fewest explicit items held out slip
   to PG or PG13, then over-rates the fewest (rating_models.calibration.rule_choose); the
   policies above are logged beside it.

Every candidate's figures, with bootstrap intervals, go into the log that the bundle's manifest
keeps; so do the data's fingerprint and the folds.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rating_models.calibration import CalibrationSet, held_out_cost, rule_choose
from rating_models.combine.mlp import ExpertSlot, MLPConfig, MultimodalMLP
from rating_models.combine.voter import rank_by, vote
from rating_models.config import BundleConfig, ConfigError
from rating_models.examples import Example, fingerprint, rated
from rating_models.experts import Expert, ExpertOutput, build_expert
from rating_models.metrics import model_report
from rating_models.stacking import OutOfFold, assign_folds, out_of_fold
from rating_models.train import out_of_fold_scores, silenced, unread_images

log = logging.getLogger(__name__)

# Settings tried per expert kind (each overrides the preset's config); cheap kinds only: a
# grid over the LSTM or a fine-tuned encoder would take hours on a CPU.
GRID: dict[str, list[dict[str, Any]]] = {"ngram": [{"C": 3.0}, {"C": 10.0}]}
MLP_WEIGHTINGS = ("balanced", "sqrt", "none")
POLICIES = ("max", "voter", "mlp")
BASELINE = "ngram"


def select(
    train: Sequence[Example],
    val: Sequence[Example],
    *,
    config: BundleConfig,
    bootstrap: int = 1000,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> tuple[BundleConfig, OutOfFold, dict[str, Expert]]:
    """Choose settings by cross-validation over `train` + `val`.

    Returns the chosen configuration (its `selection` holds the log), the chosen experts'
    out-of-fold outputs over train + val and their untrained prototypes (a frozen encoder and
    its embeddings already computed), which `train_bundle` reuses.
    """
    stage = on_stage or (lambda name: log.info("stage: %s", name))
    # Refused before any expert is fitted k times, not after (hours with transformers).
    if {spec["name"]: spec["kind"] for spec in config.experts}.get(BASELINE) != "ngram":
        raise ConfigError(
            f"selection compares against the {BASELINE!r} expert (kind ngram); add it"
        )
    examples = [*rated(train), *rated(val)]
    if len(examples) < 2 * config.folds:
        raise ConfigError(f"selection needs at least {2 * config.folds} rated examples")
    labels = np.array([e.rating.index for e in examples])
    folds = assign_folds(examples, config.folds, seed=config.seed)

    chosen_specs, outputs, expert_log, modality, prototypes = [], {}, {}, {}, {}
    for spec in config.experts:
        stage(f"expert:{spec['name']}")
        trials = []
        for override in GRID.get(spec["kind"], [{}]):
            trial = copy.deepcopy(spec)
            trial["config"] = {**trial.get("config", {}), **override}
            prototype = build_expert(trial["name"], trial["kind"], trial["config"])
            prototype.prepare(examples, progress=progress)
            modality[trial["name"]] = prototype.modality
            out = out_of_fold(prototype, examples, folds, progress=progress, seed=config.seed)
            trials.append((trial, out, _figures(labels, out.ratings, bootstrap), prototype))
        trial, out, _, prototypes[spec["name"]] = max(trials, key=lambda t: _rank_key(t[2]))
        chosen_specs.append(trial)
        outputs[trial["name"]] = out
        expert_log[trial["name"]] = [
            {"config": t["config"], **f, "chosen": t is trial} for t, _, f, _ in trials
        ]

    stage("combiners")
    scores = out_of_fold_scores(outputs, labels)
    ranked = rank_by({n: s["macro_f1"] for n, s in scores.items()}, config.voter_members)
    baseline = _baseline(outputs, labels, bootstrap)
    images = sum(e.image is not None for e in examples)
    unread = unread_images(modality, images, config.min_image_labels)
    slots = [ExpertSlot(n, modality[n], o.features.shape[1]) for n, o in outputs.items()]
    mlp_trials = {
        weighting: _mlp_out_of_fold(
            config,
            slots,
            silenced(outputs, unread),
            labels,
            folds,
            weighting=weighting,
            progress=progress,
        )
        for weighting in MLP_WEIGHTINGS
    }
    mlp_log = {w: _figures(labels, p.argmax(axis=1), bootstrap) for w, p in mlp_trials.items()}
    weighting = _pick(mlp_log, below=baseline["dcm_rate"])

    panels = {"all": ranked}
    if len(ranked) > 1:
        panels["all but the weakest"] = ranked[:-1]
    voter_trials = {
        name: vote(np.stack([outputs[n].ratings for n in members], axis=1))
        for name, members in panels.items()
    }
    voter_log = {n: _figures(labels, np.maximum(p, 0), bootstrap) for n, p in voter_trials.items()}
    panel_name = _pick(voter_log, below=baseline["dcm_rate"])

    voted = voter_trials[panel_name]
    bounded_log = None
    if config.suggested == "bounded":
        stage("bounded rule")
        bounded_log = _bounded_costs(config, examples, mlp_trials, voted, labels)
        weighting = min(bounded_log, key=lambda w: held_out_cost(bounded_log[w]))
    mlp = mlp_trials[weighting].argmax(axis=1)
    suggestions = {"max": np.maximum(voted, mlp), "voter": np.where(voted >= 0, voted, mlp)}
    suggestions["mlp"] = mlp
    policy_log = {p: _figures(labels, suggestions[p], bootstrap) for p in POLICIES}
    policy = _pick(policy_log, below=baseline["dcm_rate"] / 2, inclusive=True)
    if config.suggested == "bounded":
        policy = "bounded"

    chosen = BundleConfig(
        experts=chosen_specs,
        voter=panels[panel_name],
        mlp={**config.mlp, "class_weighting": weighting},
        suggested=policy,
        alpha=config.alpha,
        severe_alpha=config.severe_alpha,
        folds=config.folds,
        min_image_labels=config.min_image_labels,
        seed=config.seed,
    )
    chosen.selection = {
        "method": f"{config.folds}-fold cross-validation over train + val",
        "data": {"fingerprint": fingerprint(examples), "n": len(examples)},
        "rule": (
            "MLP and voter: best macro-F1 with a DCM rate below the n-gram baseline's; "
            "suggestion: best macro-F1 with at most half the baseline's DCM rate; "
            "else the lowest DCM rate"
        ),
        "baseline": baseline,
        "experts": expert_log,
        "expert_scores": scores,
        "mlp": {"chosen": weighting, "candidates": mlp_log, "bounded_rule": bounded_log},
        "voter": {"chosen": panel_name, "panels": panels, "candidates": voter_log},
        "suggested": {"chosen": policy, "candidates": policy_log},
        "chosen_experts": chosen_specs,
    }
    chosen.validate()
    return chosen, OutOfFold([e.id for e in examples], outputs), prototypes


def _bounded_costs(
    config: BundleConfig,
    examples: Sequence[Example],
    mlp_trials: dict[str, np.ndarray],
    votes: np.ndarray,
    labels: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Per MLP weighting, the bounded rule's held-out DCM, severe DCM and over-rating rates at
    α: the rule calibrated on k - 1 folds of the out-of-fold probabilities, scored on the last
    (with the voter's floor or without, as `rule_choose` chooses)."""
    costs = {}
    for weighting, probs in mlp_trials.items():
        calibration = CalibrationSet([e.id for e in examples], probs, labels, votes)
        _, report = rule_choose(
            calibration,
            alpha=config.alpha,
            severe_alpha=config.severe_alpha,
            folds=config.folds,
            seed=config.seed,
        )
        costs[weighting] = min(report["cross_validation"].values(), key=held_out_cost)
    return costs


def _mlp_out_of_fold(
    config: BundleConfig,
    slots: list[ExpertSlot],
    outputs: dict[str, ExpertOutput],
    labels: np.ndarray,
    folds: np.ndarray,
    *,
    weighting: str,
    progress: bool,
) -> np.ndarray:
    """The MLP's probabilities for each item, from an MLP trained on the other folds'
    outputs."""
    predicted = np.zeros((len(labels), 5), dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    settings = MLPConfig(**{**config.mlp, "class_weighting": weighting})
    x = MultimodalMLP(slots, settings).inputs(outputs)
    k = int(folds.max()) + 1
    for fold in tqdm(range(k), desc=f"mlp ({weighting})", disable=not progress, leave=False):
        inside = np.flatnonzero(folds != fold)
        stop = np.zeros(len(inside), dtype=bool)
        stop[rng.choice(len(inside), size=max(1, len(inside) // 10), replace=False)] = True
        mlp = MultimodalMLP(slots, settings)
        mlp.fit(x[inside[~stop]], labels[inside[~stop]], x[inside[stop]], labels[inside[stop]])
        rows = np.flatnonzero(folds == fold)
        predicted[rows] = mlp.predict_proba(x[rows])
    return predicted


def _baseline(
    outputs: dict[str, ExpertOutput], labels: np.ndarray, bootstrap: int
) -> dict[str, Any]:
    if BASELINE not in outputs:
        raise ConfigError(f"selection compares against the {BASELINE!r} expert; add it")
    return {"expert": BASELINE, **_figures(labels, outputs[BASELINE].ratings, bootstrap)}


def _figures(labels: np.ndarray, predicted: np.ndarray, bootstrap: int) -> dict[str, Any]:
    spoke = predicted >= 0
    report = model_report(labels[spoke], predicted[spoke], bootstrap)
    return {
        "n": int(spoke.sum()),
        "macro_f1": report["macro_f1"] or 0.0,
        "dcm_rate": report["dcm_rate"] if report["dcm_rate"] is not None else 1.0,
        "severe_dcm": f"{report['severe_dcm_count']}/{report['explicit_support']}",
        "intervals": report.get("intervals"),
    }


def _rank_key(figures: dict[str, Any]) -> tuple[float, float]:
    return figures["macro_f1"], -figures["dcm_rate"]


def _pick(candidates: dict[str, dict[str, Any]], *, below: float, inclusive: bool = False) -> str:
    """The best macro-F1 among the candidates under the DCM bound, else the lowest DCM."""
    fits = [
        name
        for name, f in candidates.items()
        if (f["dcm_rate"] <= below if inclusive else f["dcm_rate"] < below)
    ]
    if fits:
        return max(fits, key=lambda name: _rank_key(candidates[name]))
    lowest = min(f["dcm_rate"] for f in candidates.values())
    tied = [name for name, f in candidates.items() if f["dcm_rate"] == lowest]
    return max(tied, key=lambda name: _rank_key(candidates[name]))


__all__ = ["GRID", "select"]
