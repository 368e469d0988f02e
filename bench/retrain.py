"""Retraining: seconds to retrain the MLP on stored expert features and judge the candidate.

Set-up, not timed: a fresh PostgreSQL database with the default bundle (var/bundles/default)
registered as the champion, N labelled training items and the 1,703 labelled test items of
data/ratings/test.jsonl, each with the champion's stored prediction (every expert's features
as float16), as ingestion and the inference worker leave them.

The feature rows: the champion's experts run once on the corpus's real prompts (train, val and
test, 8,599 items; cached in var/bench/ by bundle version). The test items carry their own
prompts' rows. The N training items are real training items drawn with replacement (prompt,
tags and label kept) whose stored features are the drawn item's, perturbed with Gaussian noise
of 5% of each feature's spread, so that no two rows are the same. The items the retrain holds
out for early stopping draw from other real items than the rest, as new items would.

Ours: the product's retrain, `training_run_execute` of an MLP-only run (what /training/ and
the periodic check start): select the labelled items, load their stored features, fit the MLP,
save and register the candidate, evaluate the candidate and the champion on the test split
(from the test items' stored features too), the gate. The champion's bundle is loaded before
the clock starts, as in a worker that has predicted before. Stages are timed by wrapping the
service's own functions; `retrain_s` is the whole run.

Baseline, same run: the same retrain recomputing the expert features from the prompts, as the
service does for items without stored features (`predictions_create`): the N training rows
and the test items, then the same fit and evaluation. Recomputation is timed on
`--recompute-rows` training items and scaled linearly to N + the test items: 500 at the
default size, 10,000 with --full on CPU, all N with --full on CUDA. `ratio` = baseline
seconds / ours. Target: ours under 60 s for N = 100,000 on CPU.

    python bench/retrain.py [--full] [--rows N] [--device cpu|cuda] [--recompute-rows K]
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import record

BUNDLE = record.ROOT / "var" / "bundles" / "default"
DATA = record.ROOT / "data" / "ratings"
CACHE = record.ROOT / "var" / "bench"
TARGET_S = 60
NOISE = 0.05  # Gaussian noise on sampled feature rows, as a share of each feature's spread
CHUNK = 5_000  # rows per bulk insert
PARTS = ("probs", "features", "abstain", "flagged")  # an ExpertOutput's arrays
HEADS = ("voter", "mlp_probs", "mlp", "suggested", "flagged", "voters", "mlp_used")


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="training rows (default 20,000; --full 100,000)")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="where the experts and the MLP run (default: cuda when available, else cpu)",
    )
    parser.add_argument(
        "--recompute-rows",
        type=int,
        help="training rows whose features the baseline recomputes and times, scaled "
        "linearly to all (default 500; --full: 10,000 on CPU, all of them on CUDA)",
    )
    parser.add_argument(
        "--postgres",
        default=record.POSTGRES,
        help="a PostgreSQL server; the benchmark creates and drops its database there",
    )
    args = parser.parse_args()
    if args.rows is None:
        args.rows = 100_000 if args.full else 20_000
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.recompute_rows is None:
        # Recomputing 100,000 rows takes about half an hour on this machine's CPU.
        full = args.rows if args.device == "cuda" else 10_000
        args.recompute_rows = full if args.full else 500
    args.recompute_rows = min(args.recompute_rows, args.rows)
    if args.rows < 100 or args.recompute_rows < 1:
        parser.error("--rows must be at least 100 and --recompute-rows positive")
    if not (BUNDLE / "manifest.json").is_file():
        parser.error(f"no bundle at {BUNDLE}: run `make bundle` first")
    return args


def django_setup(database_url: str, device: str, scratch: Path) -> None:
    """The project's settings on the benchmark's database; candidates go to `scratch`."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="moderation.settings",
        DJANGO_DEBUG="0",  # DEBUG keeps every query in memory: 100,000s of them here
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="memory://",
        MODERATION_VAR_DIR=str(scratch / "var"),
        BUNDLE_DIR=str(scratch / "bundles"),
        MEDIA_ROOT=str(scratch / "media"),
        RATING_DEVICE=device,
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# -- the feature rows -----------------------------------------------------------------------------


def corpus_outputs(bundle, examples: list) -> Any:
    """The bundle's prediction for every corpus example, computed once per bundle version."""
    from rating_models.bundle import BundlePrediction
    from rating_models.experts import ExpertOutput

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"retrain-features-{bundle.version}.npz"
    if path.is_file():
        stored = np.load(path)
        experts = {
            name: ExpertOutput(*(stored[f"{name}.{part}"] for part in PARTS))
            for name in bundle.experts
        }
        return BundlePrediction(experts, *(stored[h] for h in HEADS))
    print(f"running the experts once on {len(examples)} corpus prompts (cached in {path})")
    began = time.perf_counter()
    prediction = bundle.predict(examples, progress=True)
    print(f"  {time.perf_counter() - began:.1f} s")
    arrays = {
        f"{name}.{part}": getattr(out, part)
        for name, out in prediction.experts.items()
        for part in PARTS
    }
    arrays.update({h: getattr(prediction, h) for h in HEADS})
    np.savez(path, **arrays)
    return prediction


def perturbed(prediction, rows: np.ndarray, spread: dict, rng: np.random.Generator):
    """The prediction of `rows`, every present expert's features plus Gaussian noise."""
    taken = prediction.take(rows)
    for name, out in taken.experts.items():
        noise = rng.standard_normal(out.features.shape, dtype=np.float32) * spread[name]
        out.features = np.where(out.abstain[:, None], 0.0, out.features + noise).astype(np.float32)
    return taken


def populate(bundle, version, n_rows: int, seed: int = 1234) -> dict[str, int]:
    """N training items and the test items, labelled, with the champion's stored predictions."""
    from moderation.inference.models import Prediction
    from moderation.inference.services import _prediction_row
    from moderation.media.models import MediaItem
    from moderation.review.models import Label
    from moderation.training.selectors import validation_split
    from rating_models.examples import load_examples

    train = [e for name in ("train", "val") for e in load_examples(DATA / f"{name}.jsonl")]
    test = load_examples(DATA / "test.jsonl")
    train = [e for e in train if e.rating is not None]
    test = [e for e in test if e.rating is not None]
    prediction = corpus_outputs(bundle, train + test)
    train_rows = np.arange(len(train))
    spread = {}
    for name, out in prediction.experts.items():
        present = out.features[train_rows][~out.abstain[train_rows]]
        spread[name] = (NOISE * present.std(axis=0)).astype(np.float32) if len(present) else 0.0

    def store(examples: list, split: str, rows: np.ndarray, source_rows: np.ndarray, noisy: bool):
        for start in range(0, len(rows), CHUNK):
            chunk, sources = rows[start : start + CHUNK], source_rows[start : start + CHUNK]
            picked = [examples[i] for i in chunk]
            items = MediaItem.objects.bulk_create(
                [
                    MediaItem(
                        uid=uids[split][start + k],
                        source="bench",
                        external_id=f"{split}-{start + k}",
                        prompt=e.prompt,
                        negative_prompt=e.negative_prompt,
                        tags=None if e.tags is None else [list(t) for t in e.tags],
                        split=split,
                    )
                    for k, e in enumerate(picked)
                ]
            )
            Label.objects.bulk_create(
                [
                    Label(item=item, level=e.rating.level, origin="corpus")
                    for item, e in zip(items, picked, strict=True)
                ]
            )
            outputs = (
                perturbed(prediction, sources, spread, rng) if noisy else prediction.take(sources)
            )
            Prediction.objects.bulk_create(
                [_prediction_row(item, version, bundle, outputs, k) for k, item in enumerate(items)]
            )
            print(f"  {split}: {start + len(chunk)} of {len(rows)} items stored", flush=True)

    # The retrain holds out items by a hash of their uid for early stopping: those draw from
    # real items that no training row comes from, as new items would be, or the validation
    # loss would reward learning the training rows' near-duplicates by heart.
    rng = np.random.default_rng(seed)
    uids = {"train": [uuid.uuid4() for _ in range(n_rows)], "test": []}
    uids["test"] = [uuid.uuid4() for _ in test]
    held_out = np.array(validation_split(uids["train"]))
    pools = np.split(rng.permutation(len(train)), [round(0.15 * len(train))])  # val, train
    drawn = np.where(
        held_out,
        pools[0][rng.integers(0, len(pools[0]), size=n_rows)],
        pools[1][rng.integers(0, len(pools[1]), size=n_rows)],
    )
    store(train, "train", drawn, drawn, noisy=True)
    test_rows = np.arange(len(test))
    store(test, "test", test_rows, len(train) + test_rows, noisy=False)
    return {"train_items": n_rows, "test_items": len(test), "corpus_prompts": len(train)}


# -- timing the service ------------------------------------------------------------------------


@contextlib.contextmanager
def stage_timers() -> Iterator[dict[str, float]]:
    """Seconds spent in the service's own functions, by stage, while the block runs."""
    from moderation.training import features, services

    seconds: dict[str, float] = defaultdict(float)
    reports: list[dict] = []
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, attribute: str, stage: Callable[..., str]) -> None:
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                result = original(*args, **kwargs)
            finally:
                seconds[stage(*args, **kwargs)] += time.perf_counter() - began
            if attribute == "fit":
                reports.append(result)
            return result

        originals.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    wrap(features, "stored_inputs", lambda *a, **k: "load_stored_features")
    wrap(services.MultimodalMLP, "fit", lambda *a, **k: "fit_mlp")
    wrap(services.inference, "predictions_create", lambda *a, **k: "recompute_features")
    wrap(services.versions, "model_version_register", lambda *a, **k: "register_candidate")
    wrap(
        services,
        "evaluation_create",
        lambda *a, version, **k: (
            f"evaluate_{'champion' if version.status == 'champion' else 'candidate'}"
        ),
    )
    try:
        yield seconds
    finally:
        for owner, attribute, original in reversed(originals):
            setattr(owner, attribute, original)
        seconds["mlp_report"] = reports[-1] if reports else {}


def retrain(champion) -> tuple[float, dict[str, Any], Any]:
    """One MLP-only run through the service; its seconds, stages and the finished run."""
    from moderation.training import services
    from moderation.training.models import TrainingRun

    run = TrainingRun.objects.create(mode=TrainingRun.Mode.MLP, base_version=champion)
    with stage_timers() as stages:
        began = time.perf_counter()
        services.training_run_execute(run_id=run.pk)
        total = time.perf_counter() - began
    run.refresh_from_db()
    if run.state != TrainingRun.State.SUCCEEDED:
        raise SystemExit(f"the retrain did not succeed: {run.state}: {run.reason}\n{run.log}")
    return total, dict(stages), run


def recompute(champion, n_rows: int) -> float:
    """Seconds the service's own path takes to compute the stored features of `n_rows`
    training items from their prompts (`predictions_create`, as `_train_mlp` calls it)."""
    from moderation.inference.models import ModelVersion
    from moderation.inference.services import predictions_create
    from moderation.training import selectors

    ids = list(selectors.training_items().values_list("pk", flat=True)[:n_rows])
    # Predictions are append-only: the same bundle under a version of its own has none yet.
    twin = ModelVersion.objects.create(
        version=f"{champion.version}-recompute",
        path=champion.path,
        manifest=champion.manifest,
        status=ModelVersion.Status.CANDIDATE,
    )
    began = time.perf_counter()
    written = predictions_create(item_ids=ids, version=twin)
    seconds = time.perf_counter() - began
    if written != len(ids):
        raise SystemExit(f"recomputed {written} of {len(ids)} rows")
    return seconds


def main() -> None:
    args = parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-retrain-"))
    with record.database("bench_retrain", args.postgres) as url:
        django_setup(url, args.device, scratch)
        from moderation.inference import bundles, versions

        print(f"registering {BUNDLE} as the champion (device {args.device})", flush=True)
        champion = versions.model_version_register(path=BUNDLE, promote=True)
        bundle = bundles.bundle_for(champion)  # loaded once, as in a worker that has predicted
        manifest = json.loads((BUNDLE / "manifest.json").read_text())
        sizes = {e["name"]: e["feature_size"] for e in manifest["experts"]}
        print(f"storing {args.rows} training rows and the test items", flush=True)
        began = time.perf_counter()
        size = populate(bundle, champion, args.rows)
        print(f"  set-up {time.perf_counter() - began:.1f} s", flush=True)

        import torch

        from rating_models.combine.mlp import MLPConfig

        torch_threads, check_rows = torch.get_num_threads(), MLPConfig().check_rows
        print(f"retraining the MLP on the stored features ({torch_threads} threads)", flush=True)
        ours_s, stages, run = retrain(champion)
        mlp = stages.pop("mlp_report")
        print(f"  {ours_s:.1f} s: { ({k: round(v, 1) for k, v in stages.items()}) }", flush=True)
        bundles.bundle_for(champion)  # the baseline starts as warm as ours did

        print(f"recomputing the features of {args.recompute_rows} training rows", flush=True)
        recompute_s = recompute(champion, args.recompute_rows)
        per_row = recompute_s / args.recompute_rows
        print(f"  {recompute_s:.1f} s ({1000 * per_row:.1f} ms a row)", flush=True)

    gate = run.gate or {}
    candidate = gate.get("candidate", {}).get("suggested", {})
    recomputed_rows = args.rows + run.n_test  # the training rows and the test items
    scaled = args.recompute_rows < recomputed_rows
    recompute_all_s = per_row * recomputed_rows
    baseline_s = ours_s + recompute_all_s
    figures = {
        "retrain_s": round(ours_s, 2),
        "target_s": TARGET_S,
        "meets_target": ours_s < TARGET_S,
        "device": args.device,
        "torch_threads": torch_threads,
        "stages_s": {k: round(v, 2) for k, v in sorted(stages.items())},
        "other_s": round(ours_s - sum(stages.values()), 2),
        "other_is": "selecting the labelled items, fingerprints, saving the candidate, the gate",
        "mlp": {**mlp, "rows_per_check": min(mlp.get("n_train", 0), check_rows)},
        "n_train": run.n_train,
        "n_test": run.n_test,
        "candidate_on_test": {
            k: candidate.get(k) for k in ("accuracy", "macro_f1", "dcm_rate", "severe_dcm_count")
        },
        "verdict": run.reason,
    }
    baseline = {
        "what": "the same retrain, recomputing the expert features of the training rows and "
        "the test items from their prompts (predictions_create, the service's path for items "
        "without stored features)",
        "seconds": round(baseline_s, 2),
        "recompute_s": round(recompute_all_s, 2),
        "recomputed_rows": recomputed_rows,
        "recompute_measured_rows": args.recompute_rows,
        "recompute_measured_s": round(recompute_s, 2),
        "recompute_ms_per_row": round(1000 * per_row, 3),
        "recompute_scaled_linearly": scaled,
    }
    if scaled:
        baseline["note"] = (
            f"recomputation timed on {args.recompute_rows} of {recomputed_rows} rows and "
            "scaled linearly; the fit and the evaluation are this run's own"
        )
    size.update(
        rows=args.rows,
        feature_sizes=sizes,
        bundle=manifest.get("version"),
        features=f"real rows of the corpus prompts drawn with replacement, Gaussian noise "
        f"{NOISE:.0%} of each feature's spread (held-out rows from other real items); "
        "test rows exact",
    )
    record.write(
        "retrain",
        size=size,
        figures=figures,
        baseline=baseline,
        ratio=baseline_s / ours_s,
        out=args.out,
    )


if __name__ == "__main__":
    main()
