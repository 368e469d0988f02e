"""What a label is worth: the voter, the MLP and the suggested rating trained on 10%, 25%, 50%
and 100% of the training labels, scored on the test split beside the strong baseline.

At each point a bundle is trained (`train_bundle`, the `fast` preset, its bounded suggestion
at α = 3%) on a share of the `train` split and scored once on the `test` split
(`evaluate_bundle`, bootstrap intervals). Reported per point and model: macro-F1, DCM rate,
severe DCM (x of the explicit test items), the over-rating rate (rated above the truth: what
the bounded rule pays for its DCM bound), and the automation share at α = 3% (the share of
test items the bounded rule publishes without a moderator, with the DCM and over-rating among
exactly those). Between consecutive points: each model's change in macro-F1 and DCM rate with
a paired bootstrap interval (the same resampled test items for both points).

Baseline, same run: the n-gram expert (TF-IDF word + char n-grams, logistic regression:
`rating-models baseline`'s model), trained inside each bundle on the same labels. Civitai's
tag rules (no training) are shown for reference. `ratio` is the n-gram's DCM count over the
suggestion's at 100% (how many times fewer items slip down; the suggestion's count floored at
1); each point also prints suggested over n-gram macro-F1.

Subsets. Only `train` is subsampled; `val` stays whole at every point (early stopping, and
with the training items' out-of-fold MLP probabilities the calibration items of the bounded
rule), and `test` is read for reporting only: no choice is made from it. The subsets are
stratified and nested: one permutation per rating, drawn once with `--seed`, and a share `s`
takes the first round(s * n) items of each rating (at least one of a rating the pool has), so
every smaller point is a subset of every larger one and the curve measures labels added, not a
different draw. Within a bundle the experts' folds and seeds are the preset's.

Sizes.
  --full     the `fast` preset's six experts as they are (tag rules, LSTM, MiniLM prompt,
             MiniLM prompt + tags, image, n-gram; 5 folds) on all 6,013 training items at
             10/25/50/100%; 1,000 bootstrap resamples. The frozen MiniLM embeddings of every
             train and val text are computed once (`Expert.prepare` on the experts'
             prototypes) and reused by the four bundles (`train_bundle(prototypes=...)`); a
             bundle's test predictions run its encoders as any bundle's do.
  default    (`make bench`) reduced: three cheap experts (tag rules, n-gram, and an LSTM of
             width 32 with at most 8 epochs), 2 folds instead of 5, a stratified nested pool of
             2,000 of the 6,013 training items (the points are 10/25/50/100% of the pool),
             200 bootstrap resamples. val and test are whole.
  --tiny     a smoke test for CI: tag rules and n-gram, 300 training items, 300 test items,
             points 50% and 100%, no bootstrap.

Writes bench/results/learning_curve.json (`--full`: bench/results/full/) and a chart of
macro-F1, DCM rate and automation share against the labels used: docs/learning-curve.svg with
`--full`, else learning_curve.svg beside the JSON. On a machine whose cores are shared with
other work, run it with OMP_NUM_THREADS=1: torch's two threads waiting on each other made the
MLP's small steps about 30 times slower here under load (2.3 ms against 72 ms a step).

    python bench/learning_curve.py [--full | --tiny] [--fractions 0.1,0.25,0.5,1]
    python bench/learning_curve.py --replot bench/results/learning_curve.json   # the chart only
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import record
from tqdm import tqdm

from rating_models.calibration import items_needed
from rating_models.config import LSTM_FAST, BundleConfig
from rating_models.evaluation import evaluate_bundle
from rating_models.examples import Example, load_examples, rated
from rating_models.experts import Expert, build_expert
from rating_models.ratings import LABELS, NUM_CLASSES
from rating_models.train import train_bundle

DATA = record.ROOT / "data" / "ratings"
CHART = record.ROOT / "docs" / "learning-curve.svg"
FRACTIONS = (0.1, 0.25, 0.5, 1.0)
ALPHA = 0.03
SEED = 1234
EXPLICIT_FROM = 3  # X, XXX

LSTM_SMALL = {**LSTM_FAST, "embedding_size": 32, "hidden_size": 32, "epochs": 8}
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "train_items": None,
        "test_items": None,
        "experts": None,  # the preset's
        "folds": 5,
        "bootstrap": 1000,
        "fractions": FRACTIONS,
    },
    "reduced": {
        "train_items": 2000,
        "test_items": None,
        "experts": [
            {"name": "tag_rules", "kind": "tag_rules", "config": {}},
            {"name": "lstm", "kind": "lstm", "config": LSTM_SMALL},
            {"name": "ngram", "kind": "ngram", "config": {}},
        ],
        "folds": 2,
        "bootstrap": 200,
        "fractions": FRACTIONS,
    },
    "tiny": {
        "train_items": 300,
        "test_items": 300,
        "experts": [
            {"name": "tag_rules", "kind": "tag_rules", "config": {}},
            {"name": "ngram", "kind": "ngram", "config": {}},
        ],
        "folds": 2,
        "bootstrap": 0,
        "fractions": (0.5, 1.0),
    },
}
# The models in every table, in order: the two references, then what the bundle combines.
MODELS = ("tag_rules", "ngram", "voter", "mlp", "suggested")
NAMES = {
    "tag_rules": "tag rules",
    "ngram": "n-gram (baseline)",
    "voter": "voter",
    "mlp": "MLP",
    "suggested": "suggested",
}


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smoke test (CI): seconds")
    parser.add_argument("--fractions", help="comma-separated shares of the training pool")
    parser.add_argument("--train-items", type=int, help="the training pool (a stratified share)")
    parser.add_argument("--bootstrap", type=int, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=SEED, help="the subsets' permutation")
    parser.add_argument("--chart", type=Path, help="the chart's path (.svg)")
    parser.add_argument(
        "--replot", type=Path, metavar="JSON", help="only draw the chart of a recorded run"
    )
    args = parser.parse_args()
    if args.tiny and args.full:
        parser.error("--tiny or --full, not both")
    args.size = "full" if args.full else "tiny" if args.tiny else "reduced"
    size = SIZES[args.size]
    if args.fractions:
        try:
            args.fractions = tuple(sorted(float(f) for f in args.fractions.split(",")))
        except ValueError:
            parser.error(f"--fractions: expected numbers such as 0.1,0.5,1, got {args.fractions}")
    else:
        args.fractions = size["fractions"]
    if not all(0 < f <= 1 for f in args.fractions):
        parser.error("--fractions: every share must be in (0, 1]")
    if args.train_items is None:
        args.train_items = size["train_items"]
    if args.bootstrap is None:
        args.bootstrap = size["bootstrap"]
    if args.chart is None:
        args.chart = CHART if args.full else args.out / "learning_curve.svg"
    return args


# -- subsets -----------------------------------------------------------------------------


def nested_shares(
    examples: Sequence[Example], shares: Sequence[float], *, seed: int
) -> dict[float, list[Example]]:
    """Stratified, nested subsets: for each share, the first round(share * n) items of each
    rating in one seeded permutation per rating (at least one of each rating present), in the
    examples' order. A smaller share's subset lies inside every larger one's."""
    labels = np.array([e.rating.index for e in examples])
    rng = np.random.default_rng(seed)
    orders = {c: rng.permutation(np.flatnonzero(labels == c)) for c in range(NUM_CLASSES)}
    subsets = {}
    for share in shares:
        rows: list[int] = []
        for order in orders.values():
            if len(order):
                rows.extend(order[: max(1, round(share * len(order)))].tolist())
        subsets[share] = [examples[i] for i in sorted(rows)]
    return subsets


def class_counts(examples: Sequence[Example]) -> dict[str, int]:
    counts = Counter(e.rating.label for e in examples)
    return {label: counts.get(label, 0) for label in LABELS}


# -- figures -----------------------------------------------------------------------------


def figures(model: dict[str, Any]) -> dict[str, Any]:
    """The figures a point keeps of one model's report."""
    intervals = model.get("intervals") or {}
    over = int(np.triu(np.asarray(model["confusion"]), k=1).sum())  # rated above the truth
    return {
        "n": model["n"],
        "accuracy": _round(model["accuracy"]),
        "over_rating_rate": _round(over / model["n"]) if model["n"] else None,
        "macro_f1": _round(model["macro_f1"]),
        "macro_f1_ci": _rounds(intervals.get("macro_f1")),
        "dcm_rate": _round(model["dcm_rate"]),
        "dcm_rate_ci": _rounds(intervals.get("dcm_rate")),
        "dcm_count": model["dcm_count"],
        "severe_dcm_count": model["severe_dcm_count"],
        "severe_dcm_rate": _round(model["severe_dcm_rate"]),
        "severe_dcm_rate_ci": _rounds(intervals.get("severe_dcm_rate")),
        "explicit_support": model["explicit_support"],
        "confusion": model["confusion"],  # rows true, columns rated: PG ... XXX
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _rounds(values: Sequence[float] | None) -> list[float] | None:
    return None if values is None else [round(float(v), 4) for v in values]


def paired_gain(
    y_true: np.ndarray, before: np.ndarray, after: np.ndarray, *, samples: int, seed: int = 0
) -> dict[str, list[float] | None]:
    """[point, low, high]: the change in macro-F1 and in DCM rate from `before` to `after`
    (two models' class indices on the same items), with a 95% paired bootstrap interval (the
    same resampled items for both). Macro-F1 over the five classes, 0 for a class with
    neither true nor predicted items, as `rating_models.metrics` computes it."""
    y_true = np.asarray(y_true, dtype=np.int64)

    def macro_f1(cells: np.ndarray) -> np.ndarray:  # (S, n) confusion cells -> (S,)
        counts = np.stack([np.bincount(row, minlength=NUM_CLASSES**2) for row in cells])
        counts = counts.reshape(-1, NUM_CLASSES, NUM_CLASSES)
        tp = np.diagonal(counts, axis1=1, axis2=2)
        both = counts.sum(axis=2) + counts.sum(axis=1)
        return np.divide(2 * tp, both, out=np.zeros(both.shape), where=both > 0).mean(axis=1)

    cells = [y_true * NUM_CLASSES + np.asarray(p, dtype=np.int64) for p in (before, after)]
    downs = [np.asarray(p) < y_true for p in (before, after)]
    point_f1 = macro_f1(cells[1][None]) - macro_f1(cells[0][None])
    point_dcm = downs[1].mean() - downs[0].mean()
    result: dict[str, list[float] | None] = {
        "macro_f1": [round(float(point_f1[0]), 4)],
        "dcm_rate": [round(float(point_dcm), 4)],
    }
    if samples:
        rows = np.random.default_rng(seed).integers(0, len(y_true), size=(samples, len(y_true)))
        f1 = macro_f1(cells[1][rows]) - macro_f1(cells[0][rows])
        dcm = downs[1][rows].mean(axis=1) - downs[0][rows].mean(axis=1)
        for name, values in (("macro_f1", f1), ("dcm_rate", dcm)):
            result[name] += [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]
    return result


# -- one point ---------------------------------------------------------------------------


def run_point(
    share: float,
    train: list[Example],
    val: list[Example],
    test: list[Example],
    *,
    config: BundleConfig,
    prototypes: dict[str, Expert],
    bootstrap: int,
    bar: tqdm,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train a bundle on `train`, score it on `test`: the point's figures, and each model's
    test ratings (for the paired gains)."""
    began = time.perf_counter()
    stages: dict[str, float] = {}  # stage -> the second it began, then how long it took

    def on_stage(stage: str) -> None:
        stages[stage] = time.perf_counter()
        bar.set_postfix_str(f"{share:.0%}: {stage}")

    bundle = train_bundle(
        train, val, config=copy.deepcopy(config), prototypes=prototypes, on_stage=on_stage
    )
    trained_s = time.perf_counter() - began
    ends = [*list(stages.values())[1:], began + trained_s]
    stage_s = {
        name: round(end - start, 1) for (name, start), end in zip(stages.items(), ends, strict=True)
    }
    bar.set_postfix_str(f"{share:.0%}: test split")
    began = time.perf_counter()
    prediction = bundle.predict(test)
    report = evaluate_bundle(
        bundle,
        test,
        bootstrap=bootstrap,
        outputs=prediction.experts,
        calibration=bundle.calibration,
    )
    evaluated_s = time.perf_counter() - began
    models = {name: figures(report["models"][name]) for name in MODELS if name != "suggested"}
    models["suggested"] = figures(report)
    ratings = {name: prediction.ratings(name) for name in MODELS}
    automation = report.get("automation")
    if automation is not None:  # what the published items cost the other way: over-rating
        published = np.asarray(prediction.auto_publish, dtype=bool)
        y_test = np.array([e.rating.index for e in test])
        over = prediction.suggested[published] > y_test[published]
        automation = {**automation, "over_rating_rate": _round(over.mean()) if over.size else None}
    point = {
        "share": share,
        "n_train": len(train),
        "class_counts": class_counts(train),
        "explicit_train": sum(e.rating.index >= EXPLICIT_FROM for e in train),
        "train_s": round(trained_s, 1),
        "evaluate_s": round(evaluated_s, 1),
        "stage_s": stage_s,
        "models": models,
        "automation": automation,
        "rule": (bundle.manifest.get("calibration") or {}).get("chosen"),
        "voter_panel": bundle.voter,
        "suggested_over_ngram": {
            "macro_f1": _ratio(models["suggested"]["macro_f1"], models["ngram"]["macro_f1"]),
            "dcm_fewer": _ratio(models["ngram"]["dcm_count"], models["suggested"]["dcm_count"]),
        },
    }
    return point, ratings


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or not bottom:
        return None
    return round(top / bottom, 3)


# -- printing ----------------------------------------------------------------------------


def _interval(values: list[float] | None, digits: int = 3) -> str:
    return "" if not values else f" [{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


def print_point(point: dict[str, Any]) -> None:
    counts = point["class_counts"]
    print(
        f"\n{point['share']:.0%} of the training labels: {point['n_train']} items "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())}); "
        f"trained in {point['train_s']:.1f} s, scored in {point['evaluate_s']:.1f} s"
    )
    print(f"  {'model':<18} {'macro-F1':<24} {'DCM rate':<24} {'severe DCM':<11} over-rated")
    for name in MODELS:
        m = point["models"][name]
        f1 = f"{m['macro_f1']:.3f}{_interval(m['macro_f1_ci'])}"
        dcm = f"{m['dcm_rate']:.3f}{_interval(m['dcm_rate_ci'])}"
        print(
            f"  {NAMES[name]:<18} {f1:<24} {dcm:<24} {_severe(m):<11} {m['over_rating_rate']:.3f}"
        )
    print(f"  {_automation(point['automation'])}")
    rule = point["rule"]
    if rule is not None:
        severe = rule["severe_threshold"]
        publish = rule["publish_below"]
        print(
            f"  rule: λ = {rule['threshold']:.4f} over {rule['n']} calibration items, "
            f"voter floor {'yes' if rule['voter_floor'] else 'no'}, severe bound "
            f"{'none' if severe is None else f'{severe:.4f}'} ({rule['n_explicit']} explicit), "
            f"publishes below {'never' if publish is None else f'{publish:.4f}'}"
        )
    ratio = point["suggested_over_ngram"]
    print(
        f"  suggested vs n-gram: macro-F1 {_times(ratio['macro_f1'])}, "
        f"DCM {_times(ratio['dcm_fewer'])} fewer items slipping down"
    )


def _severe(m: dict[str, Any]) -> str:
    return f"{m['severe_dcm_count']}/{m['explicit_support']}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _automation(auto: dict[str, Any] | None) -> str:
    if auto is None:
        return f"automation at α = {ALPHA:.0%}: none (no bounded rule)"
    dcm = "—" if auto["dcm_rate"] is None else f"{auto['dcm_rate']:.3f}"
    over = "—" if auto["over_rating_rate"] is None else f"{auto['over_rating_rate']:.3f}"
    return (
        f"automation at α = {ALPHA:.0%}: {auto['share']:.1%} of test items published "
        f"unreviewed ({auto['published']}), among them DCM {dcm}, over-rated {over}"
    )


def markdown(points: list[dict[str, Any]], gains: list[dict[str, Any]]) -> str:
    """The tables BENCHMARKS.md takes: figures per point, then the gains between points."""
    lines = [
        "| labels | model | macro-F1 | DCM rate | severe DCM | over-rated | published at "
        "α = 3% (DCM, over-rated among them) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for point in points:
        published = _published(point["automation"])
        for name in MODELS:
            m = point["models"][name]
            label = f"{point['share']:.0%} · {point['n_train']:,}" if name == MODELS[0] else ""
            bold = "**" if name == "suggested" else ""
            lines.append(
                f"| {label} | {bold}{NAMES[name]}{bold} "
                f"| {m['macro_f1']:.3f}{_interval(m['macro_f1_ci'])} "
                f"| {m['dcm_rate']:.3f}{_interval(m['dcm_rate_ci'])} | {_severe(m)} "
                f"| {m['over_rating_rate']:.3f} | {published if name == 'suggested' else ''} |"
            )
    if gains:
        lines += [
            "",
            "| from → to | model | Δ macro-F1 [paired 95%] | Δ DCM rate [paired 95%] |",
            "|---|---|---:|---:|",
        ]
        for gain in gains:
            for name in ("ngram", "voter", "mlp", "suggested"):
                g = gain["models"][name]
                lines.append(
                    f"| {gain['from']:.0%} → {gain['to']:.0%} | {NAMES[name]} "
                    f"| {_signed(g['macro_f1'])} | {_signed(g['dcm_rate'])} |"
                )
    return "\n".join(lines)


def _published(auto: dict[str, Any] | None) -> str:
    if auto is None:
        return "—"
    dcm = "—" if auto["dcm_rate"] is None else f"{auto['dcm_rate']:.3f}"
    over = "—" if auto["over_rating_rate"] is None else f"{auto['over_rating_rate']:.3f}"
    return f"{auto['share']:.1%} ({dcm}, {over})"


def _signed(values: list[float]) -> str:
    text = f"{values[0]:+.3f}"
    if len(values) == 3:
        text += f" [{values[1]:+.3f}, {values[2]:+.3f}]"
    return text


# -- the chart ---------------------------------------------------------------------------

CHART_STYLE = (
    "<style>.grid{stroke:#e4e4e7;stroke-width:1}.axis{stroke:#52525b;stroke-width:1}"
    "text{font-family:system-ui,sans-serif;fill:#27272a}.tick{font-size:11px}"
    ".legend{font-size:12px}.axis-label{font-size:12px}.panel-title{font-size:13px;"
    "font-weight:600}</style>"
)


def chart(points: list[dict[str, Any]], path: Path) -> Path:
    """Three panels over the points: macro-F1, DCM rate, and the automation share with the
    DCM and the over-rating among published items: the dashboards' own SVG line charts,
    stacked in one file."""
    from moderation.dashboards.charts import Series, line_chart  # no Django settings needed

    labels = [f"{p['share']:.0%}\n{p['n_train']:,}" for p in points]

    def series(figure: str) -> list[Series]:
        return [
            Series(
                NAMES[name],
                [p["models"][name][figure] for p in points],
                dashed=name in ("tag_rules", "ngram"),
            )
            for name in MODELS
        ]

    autos = [p["automation"] or {} for p in points]
    macro_f1 = line_chart(
        series("macro_f1"),
        x_labels=labels,
        title="Macro-F1",
        y_label="macro-F1",
        percent=False,
        y_max=1.0,
    )
    dcm = line_chart(series("dcm_rate"), x_labels=labels, title="DCM rate", y_label="DCM rate")
    automation = line_chart(
        [
            Series("published unreviewed", [a.get("share") for a in autos]),
            Series("DCM among published", [a.get("dcm_rate") for a in autos], dashed=True),
            Series("over-rated among published", [a.get("over_rating_rate") for a in autos]),
        ],
        x_labels=labels,
        title="Automation",
        y_label="share of test items",
    )
    panels = [
        ("Macro-F1 on the test split, against the training labels used (share, items)", macro_f1),
        ("DCM rate on the test split (lower is better)", dcm),
        (f"Automation at α = {ALPHA:.0%}: test items published without a moderator", automation),
    ]
    width, height, heading = 720, 280, 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
        f'{len(panels) * (height + heading)}" width="{width}" role="img">',
        "<title>What a label is worth: the learning curve</title>",
        CHART_STYLE,
        '<rect width="100%" height="100%" fill="#fff"/>',
    ]
    for k, (title, svg) in enumerate(panels):
        top = k * (height + heading)
        inner = str(svg)
        inner = inner[inner.index(">") + 1 : inner.rindex("</svg>")]  # drop the outer <svg>
        parts.append(
            f'<text class="panel-title" x="12" y="{top + 18}">{title}</text>'
            f'<g transform="translate(0 {top + heading})">{inner}</g>'
        )
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
    return path


# -- main --------------------------------------------------------------------------------


def recorded_points(path: Path) -> list[dict[str, Any]]:
    """The points of a results file, each with every model's figures again."""
    result = json.loads(path.read_text())
    points = []
    for k, point in enumerate(result["figures"]["points"]):
        models = {
            "tag_rules": result["baseline"]["reference_tag_rules"][k],
            "ngram": result["baseline"]["points"][k]["ngram"],
            **point["models"],
        }
        points.append({**point, "models": models})
    return points


def main() -> None:
    args = parse_args()
    if args.replot is not None:
        print(f"chart: {record.relative(chart(recorded_points(args.replot), args.chart))}")
        return
    size = SIZES[args.size]
    train_all = rated(load_examples(DATA / "train.jsonl"))
    val = rated(load_examples(DATA / "val.jsonl"))
    test = rated(load_examples(DATA / "test.jsonl"))
    if size["test_items"]:  # --tiny only: a stratified share of the test split
        share = size["test_items"] / len(test)
        test = nested_shares(test, [share], seed=args.seed)[share]
    pool_share = 1.0 if args.train_items is None else min(1.0, args.train_items / len(train_all))
    shares = {f: f * pool_share for f in args.fractions}
    subsets = nested_shares(train_all, [pool_share, *shares.values()], seed=args.seed)
    pool = subsets[pool_share]

    overrides: dict[str, Any] = {"folds": size["folds"], "alpha": ALPHA, "seed": SEED}
    if size["experts"] is not None:
        overrides["experts"] = size["experts"]
    config = BundleConfig.from_preset("fast", overrides)
    needed = items_needed(ALPHA, config.folds)
    smallest = len(subsets[min(shares.values())]) + len(val)
    if smallest < needed:
        raise SystemExit(f"{smallest} calibration items at the smallest point: {needed} needed")

    began = time.perf_counter()
    # Frozen encoders: embed every train and val text once; each bundle's experts share it.
    prototypes: dict[str, Expert] = {}
    for spec in config.experts:
        if spec["kind"] == "transformer" and spec["config"].get("mode") == "frozen":
            prototype = build_expert(spec["name"], spec["kind"], spec["config"])
            prototype.prepare([*pool, *val], progress=True)
            prototypes[spec["name"]] = prototype
    prepared_s = time.perf_counter() - began
    print(
        f"learning curve ({args.size}): pool of {len(pool)} of {len(train_all)} training items "
        f"{class_counts(pool)}, val {len(val)}, test {len(test)}; experts "
        f"{[e['name'] for e in config.experts]}, {config.folds} folds, bounded at α = {ALPHA:.0%}"
        f" (needs {needed} calibration items); embeddings prepared in {prepared_s:.1f} s"
    )

    points, ratings = [], []
    y_test = np.array([e.rating.index for e in test])
    with tqdm(list(args.fractions), desc="learning curve", unit="point") as bar:
        for fraction in bar:
            point, rated_test = run_point(
                fraction,
                subsets[shares[fraction]],
                val,
                test,
                config=config,
                prototypes=prototypes,
                bootstrap=args.bootstrap,
                bar=bar,
            )
            points.append(point)
            ratings.append(rated_test)
            bar.write("")
            print_point(point)
    total_s = time.perf_counter() - began

    gains = [
        {
            "from": points[i]["share"],
            "to": points[i + 1]["share"],
            "models": {
                name: paired_gain(
                    y_test, ratings[i][name], ratings[i + 1][name], samples=args.bootstrap
                )
                for name in ("ngram", "voter", "mlp", "suggested")
            },
        }
        for i in range(len(points) - 1)
    ]
    print("\n" + markdown(points, gains) + "\n")
    path = chart(points, args.chart)
    print(f"chart: {record.relative(path)}; {total_s:.0f} s in all")

    last = points[-1]["models"]
    ours = {
        "points": [
            {
                **{k: v for k, v in p.items() if k != "models"},
                "models": {n: p["models"][n] for n in ("voter", "mlp", "suggested")},
            }
            for p in points
        ],
        "gains": gains,
        "chart": record.relative(path),
        "prepare_embeddings_s": round(prepared_s, 1),
        "total_s": round(total_s, 1),
    }
    baseline = {
        "model": "n-gram expert (TF-IDF word + char n-grams, logistic regression), same labels",
        "points": [
            {"share": p["share"], "n_train": p["n_train"], "ngram": p["models"]["ngram"]}
            for p in points
        ],
        "reference_tag_rules": [p["models"]["tag_rules"] for p in points],
    }
    record.write(
        "learning_curve",
        size={
            "size": args.size,
            "fractions": list(args.fractions),
            "train_pool": len(pool),
            "train_split": len(train_all),
            "val": len(val),
            "test": len(test),
            "experts": [e["name"] for e in config.experts],
            "folds": config.folds,
            "alpha": ALPHA,
            "bootstrap": args.bootstrap,
            "seed": args.seed,
        },
        figures=ours,
        baseline=baseline,
        ratio=last["ngram"]["dcm_count"] / max(last["suggested"]["dcm_count"], 1),
        out=args.out,
    )


if __name__ == "__main__":
    main()
