"""The label-error pass: how many planted down-class label errors it finds near the top of its
list, and (`--corpus`) its list over a bundle's own out-of-sample probabilities.

Planted errors. In a copy of the training split, ERRORS items drawn among those rated R, X or
XXX are relabelled PG (one draw per seed). The n-gram expert (TF-IDF word + char n-grams,
logistic regression: the strong baseline's model) rates every item out of fold (5 folds,
stratified on the planted labels, the seed's), and `find_label_errors` ranks what confident
learning flags. Reported per k in 20, 50, 100, 200: the recall of the planted items among the
first k of the list, mean and range over the seeds, for three orders:

  ours       the second-look queue's: highest down-class risk (P(rating > label)) first
  baseline   cleanlab's own order, lowest self-confidence (P(label)) first, same flagged set
  random     the expected recall of k items drawn at random from the split: k / N

`ratio` is ours over the baseline at k = 100, mean over the seeds.

Sizes: default 5 seeds (about a minute and a half on 2 cores); --full 20.

Corpus (`--corpus BUNDLE`): no planting; the bundle's calibration items (train + val, the
MLP's out-of-sample probabilities, `stacking/calibration.npz`) are ranked the queue's way and
the first `--top` written to `--csv` with each item's prompt, negative prompt and tags from
`--data` (its .jsonl files), for a person to judge against the guideline.

    python bench/label_errors.py [--full] [--seeds N] [--errors 20]
    python bench/label_errors.py --corpus var/bundles/default --top 50 --csv ranked.csv
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import record

from rating_models.calibration import read_calibration
from rating_models.examples import Example, load_examples, rated
from rating_models.experts import build_expert
from rating_models.label_errors import (
    find_label_errors,
    plant_label_errors,
    recall_at,
)
from rating_models.ratings import LABELS, Rating
from rating_models.stacking import assign_folds, out_of_fold

DATA = record.ROOT / "data" / "ratings"
KS = (20, 50, 100, 200)
HEADLINE_K = 100
ERRORS = 20
FOLDS = 5
PLANTED_FROM = (Rating.R.index, Rating.X.index, Rating.XXX.index)


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, help="planting draws (default 5; --full 20)")
    parser.add_argument("--errors", type=int, default=ERRORS, help="errors planted per draw")
    parser.add_argument(
        "--train", type=Path, default=DATA / "train.jsonl", help="the split to plant errors in"
    )
    parser.add_argument(
        "--corpus", type=Path, metavar="BUNDLE", help="rank a bundle's calibration items instead"
    )
    parser.add_argument("--top", type=int, default=50, help="with --corpus: items written")
    parser.add_argument("--csv", type=Path, help="with --corpus: the ranked list's file")
    parser.add_argument(
        "--data", type=Path, default=DATA, help="with --corpus: the .jsonl files of the items"
    )
    args = parser.parse_args()
    if args.corpus is not None and args.csv is None:
        parser.error("--corpus needs --csv: where the ranked list goes")
    if args.seeds is None:
        args.seeds = 20 if args.full else 5
    if args.seeds < 1 or args.errors < 1 or args.top < 1:
        parser.error("--seeds, --errors and --top must be positive")
    return args


def say(message: str) -> None:
    print(message, flush=True)


# -- planted errors -----------------------------------------------------------------------------


def ngram_probs(examples: list[Example], labels: np.ndarray, *, seed: int) -> np.ndarray:
    """(N, 5) the n-gram expert's out-of-fold probabilities, trained on `labels`."""
    relabelled = [
        replace(e, label=Rating.from_index(y)) for e, y in zip(examples, labels, strict=True)
    ]
    folds = assign_folds(relabelled, FOLDS, seed=seed)
    # No early-stopping share: a linear model does not stop early, so every fold keeps all
    # its training items.
    output = out_of_fold(build_expert("ngram", "ngram"), relabelled, folds, early_stopping=[])
    return output.probs


def planted_run(examples: list[Example], *, errors: int, seed: int) -> dict[str, Any]:
    labels = np.array([e.rating.index for e in examples])
    planted, rows = plant_label_errors(
        labels, errors, from_ratings=PLANTED_FROM, to=Rating.PG.index, seed=seed
    )
    began = time.perf_counter()
    probs = ngram_probs(examples, planted, seed=seed)
    ids = [e.id for e in examples]
    ours = find_label_errors(ids, planted, probs)
    baseline = find_label_errors(ids, planted, probs, order="self_confidence")
    truth = {ids[i] for i in rows}
    return {
        "seed": seed,
        "seconds": round(time.perf_counter() - began, 1),
        "flagged": len(ours),
        "planted_from": dict(Counter(LABELS[labels[i]] for i in rows)),
        "planted_flagged": round(recall_at(ours, truth, len(ours)), 3),
        "ours": {k: recall_at(ours, truth, k) for k in KS},
        "baseline": {k: recall_at(baseline, truth, k) for k in KS},
    }


def spread(runs: list[dict[str, Any]], order: str) -> dict[str, dict[str, float]]:
    """Per k: mean, min and max recall over the seeds."""
    found = {}
    for k in KS:
        values = [run[order][k] for run in runs]
        found[str(k)] = {
            "mean": round(float(np.mean(values)), 3),
            "min": round(float(min(values)), 3),
            "max": round(float(max(values)), 3),
        }
    return found


def planted(args) -> None:
    examples = rated(load_examples(args.train))
    counts = Counter(LABELS[e.rating.index] for e in examples)
    say(
        f"{len(examples)} items from {record.relative(args.train)} "
        f"({', '.join(f'{r} {counts[r]}' for r in LABELS)}); {args.errors} of the R, X or XXX "
        f"relabelled PG per seed, {args.seeds} seeds, n-gram out of {FOLDS} folds"
    )
    runs = []
    for seed in range(args.seeds):
        run = planted_run(examples, errors=args.errors, seed=seed)
        runs.append(run)
        ours = " / ".join(f"{run['ours'][k]:.2f}" for k in KS)
        base = " / ".join(f"{run['baseline'][k]:.2f}" for k in KS)
        say(
            f"  seed {seed}: {run['flagged']} flagged ({run['planted_flagged']:.0%} of the "
            f"planted); recall at {', '.join(str(k) for k in KS)}: ours {ours}, "
            f"self-confidence {base} ({run['seconds']} s)"
        )
    ours, baseline = spread(runs, "ours"), spread(runs, "baseline")
    random = {str(k): round(k / len(examples), 4) for k in KS}
    say("recall of the planted errors among the first k (mean [min, max] over the seeds):")
    for k in map(str, KS):
        o, b = ours[k], baseline[k]
        say(
            f"  k={k:>3}: ours {o['mean']:.2f} [{o['min']:.2f}, {o['max']:.2f}] · "
            f"self-confidence {b['mean']:.2f} [{b['min']:.2f}, {b['max']:.2f}] · "
            f"random {random[k]:.3f}"
        )
    head = str(HEADLINE_K)
    ratio = ours[head]["mean"] / max(baseline[head]["mean"], 1e-9)
    record.write(
        "label_errors",
        size={
            "train": record.relative(args.train),
            "items": len(examples),
            "planted": args.errors,
            "planted_from": [LABELS[i] for i in PLANTED_FROM],
            "seeds": args.seeds,
            "folds": FOLDS,
            "probabilities": "n-gram expert, out of fold",
        },
        figures={
            "order": "down-class risk first, then lowest self-confidence",
            "recall_at_k": ours,
            "random_recall_at_k": random,
            "flagged_mean": round(float(np.mean([r["flagged"] for r in runs])), 1),
            "runs": [
                {**r, "ours": _keyed(r["ours"]), "baseline": _keyed(r["baseline"])} for r in runs
            ],
        },
        baseline={"order": "lowest self-confidence first (cleanlab)", "recall_at_k": baseline},
        ratio=ratio,
        out=args.out,
    )


def _keyed(by_k: dict[int, float]) -> dict[str, float]:
    return {str(k): round(v, 3) for k, v in by_k.items()}


# -- a bundle's own list ------------------------------------------------------------------------


def corpus(args) -> None:
    calibration = read_calibration(args.corpus)
    if calibration is None:
        raise SystemExit(f"{args.corpus}: no calibration items (stacking/calibration.npz)")
    items = {e.id: e for path in sorted(args.data.glob("*.jsonl")) for e in load_examples(path)}
    issues = find_label_errors(calibration.ids, calibration.labels, calibration.probs)
    pairs = Counter((LABELS[i.given], LABELS[i.likely]) for i in issues)
    say(
        f"{len(calibration)} calibration items of {record.relative(args.corpus)}: "
        f"{len(issues)} flagged; by (given, likely): "
        + ", ".join(f"{g}→{lk} {n}" for (g, lk), n in pairs.most_common())
    )
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "rank",
                "id",
                "given",
                "model_likely",
                "down_class_risk",
                "self_confidence",
                "source",
                "prompt",
                "negative_prompt",
                "tags",
            ]
        )
        for rank, issue in enumerate(issues[: args.top], start=1):
            item = items.get(issue.id)
            writer.writerow(
                [
                    rank,
                    issue.id,
                    LABELS[issue.given],
                    LABELS[issue.likely],
                    f"{issue.down_class_risk:.3f}",
                    f"{issue.self_confidence:.3f}",
                    item.source if item else "",
                    item.prompt if item else "",
                    item.negative_prompt if item else "",
                    json.dumps([name for name, _ in item.tags or ()]) if item else "",
                ]
            )
    say(f"the first {min(args.top, len(issues))} written to {args.csv}")


def main() -> None:
    args = parse_args()
    if args.corpus is not None:
        corpus(args)
    else:
        planted(args)


if __name__ == "__main__":
    main()
