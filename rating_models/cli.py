"""`rating-models`: train, evaluate and run bundles from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rating_models.ratings import LABELS
from rating_models.reports import fmt, format_report, table

RUNTIME_HELP = (
    "how the transformer experts run their encoders: auto (the default: fp16 on CUDA, bf16 "
    "on a CPU with bf16 units, else torch), torch, torch-fp16, torch-bf16, onnx or onnx-int8"
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rating-models",
        description="Train, evaluate and run content-rating bundles (PG, PG13, R, X, XXX).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every stage")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a bundle from rated examples")
    train.add_argument("--data", required=True, type=Path, help="training examples (.jsonl/.csv)")
    train.add_argument(
        "--val", required=True, type=Path, help="validation examples, for early stopping"
    )
    train.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    train.add_argument(
        "--preset", default="fast", help="fast (CPU, frozen encoders) or full (GPU fine-tuning)"
    )
    train.add_argument(
        "--config",
        type=Path,
        help="JSON file overriding the preset's experts, voter, mlp, suggested",
    )
    train.add_argument(
        "--test", type=Path, help="test examples: record their metrics in the manifest"
    )
    train.add_argument(
        "--select",
        action="store_true",
        help="first choose settings by cross-validation over train + val (as `select` does) "
        "and train with them; the manifest keeps the selection log",
    )
    train.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="with --select: resamples"
    )

    select = commands.add_parser(
        "select",
        help="choose settings by k-fold cross-validation over train + val (never the test split)",
    )
    select.add_argument("--data", required=True, type=Path, help="training examples")
    select.add_argument("--val", required=True, type=Path, help="validation examples")
    select.add_argument(
        "--out",
        required=True,
        type=Path,
        help="configuration file to write (for `train --config`); the experts' out-of-fold "
        "outputs go beside it (.npz), for `train` to reuse",
    )
    select.add_argument("--preset", default="fast", help="the preset whose settings are tried")
    select.add_argument("--config", type=Path, help="JSON file overriding the preset first")
    select.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (1000)"
    )

    evaluate = commands.add_parser("evaluate", help="score a bundle on rated examples")
    evaluate.add_argument("bundle", type=Path, help="bundle directory")
    evaluate.add_argument("data", type=Path, help="rated examples (.jsonl/.csv)")
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )
    evaluate.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    evaluate.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="add 95%% bootstrap intervals from N resamples (e.g. 1000)",
    )
    evaluate.add_argument("--by", choices=["source"], help="also report per value of this field")
    evaluate.add_argument("--runtime", help=RUNTIME_HELP)

    recalibrate = commands.add_parser(
        "recalibrate",
        help="a new bundle whose bounded-DCM suggestion targets another α (no training)",
    )
    recalibrate.add_argument("bundle", type=Path, help="a bundle trained with suggested=bounded")
    recalibrate.add_argument(
        "--alpha", type=float, required=True, help="the expected DCM rate to stay within"
    )
    recalibrate.add_argument(
        "--severe-alpha", type=float, help="also bound the severe DCM rate of explicit items"
    )
    recalibrate.add_argument("--out", type=Path, required=True, help="new bundle directory")

    predict = commands.add_parser("predict", help="rate examples with a bundle")
    predict.add_argument("bundle", type=Path, help="bundle directory")
    predict.add_argument("data", type=Path, help="examples (.jsonl/.csv); ratings are not needed")
    predict.add_argument("--out", type=Path, help="JSONL file to write (default: standard output)")
    predict.add_argument("--runtime", help=RUNTIME_HELP)

    baseline = commands.add_parser(
        "baseline", help="score the TF-IDF + logistic regression baseline"
    )
    baseline.add_argument("--data", required=True, type=Path, help="training examples")
    baseline.add_argument("--test", required=True, type=Path, help="rated test examples")
    baseline.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )
    baseline.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    baseline.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="add 95%% bootstrap intervals from N resamples (e.g. 1000)",
    )
    baseline.add_argument("--by", choices=["source"], help="also report per value of this field")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imports after parsing: `--help` must not wait for torch.
    from rating_models.bundle import BundleError
    from rating_models.examples import DataError
    from rating_models.experts import ExpertError
    from rating_models.train import ConfigError

    try:
        return COMMANDS[args.command](args)
    except (DataError, BundleError, ConfigError, ExpertError) as error:
        print(f"rating-models: error: {error}", file=sys.stderr)
        return 2


def run_train(args: argparse.Namespace) -> int:
    from rating_models.examples import load_examples
    from rating_models.train import train_bundle

    config = _config(args)
    train, val = load_examples(args.data), load_examples(args.val)
    test = load_examples(args.test) if args.test else None
    computed = _selection_outputs(args.config, config, train, val)
    prototypes = None
    if args.select:
        config, computed, prototypes = _run_selection(args, config, train, val)
    print(
        f"training {len(train)} items, validating on {len(val)}, preset {args.preset}",
        file=sys.stderr,
    )
    bundle = train_bundle(
        train,
        val,
        config=config,
        out=args.out,
        test=test,
        progress=True,
        on_stage=lambda name: print(f"== {name}", file=sys.stderr),
        computed=computed,
        prototypes=prototypes,
    )
    print(f"bundle {bundle.version} written to {args.out}", file=sys.stderr)
    if bundle.manifest.get("test_metrics"):
        print(format_report(bundle.manifest["test_metrics"]))
    return 0


def _config(args: argparse.Namespace) -> Any:
    from rating_models.config import BundleConfig

    if args.config:
        return BundleConfig.from_file(args.config, preset=args.preset)
    return BundleConfig.from_preset(args.preset)


def _selection_outputs(path: Path | None, config: Any, train: list, val: list) -> Any:
    """The out-of-fold outputs `select` wrote beside its configuration, when that selection
    ran over exactly these train + val items with these experts; else None (train computes
    its own)."""
    from rating_models.examples import fingerprint, rated
    from rating_models.stacking import OutOfFold

    selection = config.selection or {}
    if path is None or not selection:
        return None
    outputs = path.with_suffix(".npz")
    same_data = selection.get("data", {}).get("fingerprint") == fingerprint(
        [*rated(train), *rated(val)]
    )
    if not (outputs.is_file() and same_data and selection.get("chosen_experts") == config.experts):
        print("the selection's out-of-fold outputs do not match: computing them", file=sys.stderr)
        return None
    return OutOfFold.load(outputs)


def _run_selection(args: argparse.Namespace, config: Any, train: list, val: list) -> Any:
    from rating_models.selection import select

    print(
        f"cross-validating {config.folds} folds over {len(train)} + {len(val)} items",
        file=sys.stderr,
    )
    chosen, outputs, prototypes = select(
        train,
        val,
        config=config,
        bootstrap=args.bootstrap,
        progress=True,
        on_stage=lambda name: print(f"== select: {name}", file=sys.stderr),
    )
    print(format_selection(chosen.selection), file=sys.stderr)
    return chosen, outputs, prototypes


def run_select(args: argparse.Namespace) -> int:
    from rating_models.examples import load_examples

    config = _config(args)
    train, val = load_examples(args.data), load_examples(args.val)
    chosen, outputs, _ = _run_selection(args, config, train, val)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    outputs.save(args.out.with_suffix(".npz"))
    record = {**chosen.describe(), "selection": chosen.selection}
    args.out.write_text(json.dumps(record, indent=2))
    print(f"configuration written to {args.out}", file=sys.stderr)
    return 0


def format_selection(selection: dict[str, Any]) -> str:
    """The candidates' cross-validated figures, one table per choice."""
    lines = [f"{selection['method']}, {selection['data']['n']} items", selection["rule"], ""]
    rows = [("choice", "candidate", "macro-F1", "DCM rate", "severe DCM", "chosen")]
    baseline = selection["baseline"]
    rows.append(_selection_row("baseline", baseline["expert"], baseline, True))
    for name, trials in selection["experts"].items():
        for trial in trials:
            label = ", ".join(f"{k}={v}" for k, v in trial["config"].items()) or "preset"
            rows.append(_selection_row(f"expert {name}", label, trial, trial["chosen"]))
    for choice in ("mlp", "voter", "suggested"):
        block = selection[choice]
        for name, figures in block["candidates"].items():
            rows.append(_selection_row(choice, name, figures, name == block["chosen"]))
    lines += table(rows)
    bounded = selection["mlp"].get("bounded_rule")
    if bounded:
        lines += ["", "bounded suggestion: held-out rates of its rule per MLP weighting", ""]
        costs = [("MLP weighting", "DCM rate", "severe DCM rate", "over-rating rate", "chosen")]
        for name, figures in bounded.items():
            chosen = "*" if name == selection["mlp"]["chosen"] else ""
            costs.append(
                (
                    name,
                    fmt(figures["dcm_rate"]),
                    fmt(figures.get("severe_dcm_rate")),
                    fmt(figures["over_rating_rate"]),
                    chosen,
                )
            )
        lines += table(costs)
    return "\n".join(lines)


def _selection_row(choice: str, name: str, f: dict[str, Any], chosen: bool) -> tuple[str, ...]:
    ci = f.get("intervals") or {}
    return (
        choice,
        name,
        fmt(f["macro_f1"], ci.get("macro_f1")),
        fmt(f["dcm_rate"], ci.get("dcm_rate")),
        f["severe_dcm"],
        "*" if chosen else "",
    )


def run_evaluate(args: argparse.Namespace) -> int:
    from rating_models.bundle import Bundle
    from rating_models.calibration import read_calibration
    from rating_models.evaluation import evaluate_bundle
    from rating_models.examples import load_examples

    bundle = Bundle.load(args.bundle, runtime=args.runtime)
    report = evaluate_bundle(
        bundle,
        load_examples(args.data),
        by=args.by,
        bootstrap=args.bootstrap,
        progress=not args.json,
        calibration=read_calibration(args.bundle),
    )
    report["bundle"] = bundle.version
    print(json.dumps(report) if args.json else format_report(report, markdown=args.markdown))
    return 0


def run_recalibrate(args: argparse.Namespace) -> int:
    from rating_models.calibration import recalibrate

    for name in ("alpha", "severe_alpha"):
        value = getattr(args, name)
        if value is not None and not 0 < value < 1:
            flag = "--" + name.replace("_", "-")
            message = f"{flag} {value}: expected a share between 0 and 1"
            print(f"rating-models: error: {message}", file=sys.stderr)
            return 2
    bundle = recalibrate(
        args.bundle, alpha=args.alpha, severe_alpha=args.severe_alpha, out=args.out
    )
    rule = bundle.rule
    floor = "on" if rule.voter_floor else "off"
    print(
        f"{bundle.version}: suggested rating bounded at α = {rule.alpha:.1%} (threshold "
        f"{rule.effective_threshold:.4f}, voter floor {floor}, {rule.n} calibration items); "
        f"written to {args.out}"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from rating_models.bundle import Bundle
    from rating_models.examples import load_examples

    bundle = Bundle.load(args.bundle, runtime=args.runtime)
    examples = load_examples(args.data)
    prediction = bundle.predict(examples, progress=True)
    out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    try:
        for row, example in enumerate(examples):
            record = {
                "id": example.id,
                "suggested": _label(prediction.suggested[row]),
                "voter": _label(prediction.voter[row]),
                "mlp": _label(prediction.mlp[row]),
                "mlp_probs": dict(zip(LABELS, map(float, prediction.mlp_probs[row]), strict=True)),
                "experts": {
                    name: _label(out_.ratings[row]) for name, out_ in prediction.experts.items()
                },
                "flagged": bool(prediction.flagged[row]),
                "bundle": bundle.version,
            }
            out.write(json.dumps(record) + "\n")
    finally:
        if args.out:
            out.close()
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from rating_models.baselines import baseline_report
    from rating_models.examples import load_examples

    report = baseline_report(
        load_examples(args.data), load_examples(args.test), by=args.by, bootstrap=args.bootstrap
    )
    print(json.dumps(report) if args.json else format_report(report, markdown=args.markdown))
    return 0


COMMANDS = {
    "train": run_train,
    "select": run_select,
    "evaluate": run_evaluate,
    "recalibrate": run_recalibrate,
    "predict": run_predict,
    "baseline": run_baseline,
}


def _label(index: int) -> str | None:
    return None if index < 0 else LABELS[int(index)]


if __name__ == "__main__":
    sys.exit(main())
