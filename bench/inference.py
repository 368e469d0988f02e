"""Bundle inference: items/s of the transformer prompt expert and of the whole default bundle.

Baseline, same run: the bundle's `text` expert (the packaged MiniLM encoder, mean pooling and
its trained head; same weights, same compute) wrapped as a `transformers` sequence
classification model and called the way a user would write it: `pipeline("text-
classification")`, one prompt per call, on the prompts as the expert cleans them.

Ours, on the same real test-split prompts:
- the expert: `TransformerExpert.predict` (length-sorted batches of bounded padding,
  `inference_mode`) in the runtime it loads with by default ("auto": bf16 autocast on a CPU
  with bf16 matrix units, else fp32 torch; fp16 autocast on CUDA), and in every other
  runtime named by `--runtimes` (on the CPU: ONNX Runtime fp32 and int8 too);
- the whole bundle: `Bundle.predict` (every expert, the voter and the MLP) on the same test
  items as they are, prompt and tags (1,488 of the 1,703 have tags); the corpus has no images,
  so the image expert abstains.

Also measured: each runtime's ratings on all 1,703 test items against fp32 torch (macro-F1, DCM
rate, severe DCM, share of ratings unchanged), for the expert and for the bundle's suggested
rating (the runtime applies to both transformer experts); the encoder FLOP/s achieved as a
share of this machine's `torch.matmul` peak measured in the same run, same dtype; single-item
latency p50/p95. `ratio` = expert items/s / per-item pipeline items/s. Targets: the expert at
least 3x the pipeline, the whole bundle at least 1x, and 20x on a GPU (bench/gpu.sh).

Explanations (`rating_models.explain`), on the worker's path: the timed items in batches of
the worker's INFERENCE_BATCH_SIZE (64), each predicted, then explained within the time its
prediction took, as the worker does; against the same batches predicted only, in the same
rounds. Target: at least half the items/s. Also: the share of items a moderator would see
(not published by the bundle's rule), the share of those explained in full within the
budget, and what explaining every item in full costs (no budget, on one batch).

    python bench/inference.py [--full] [--device cpu|cuda] [--dtype fp32|fp16|bf16]
                              [--runtimes R,R] [--batch-size N] [--items N] [--bundle DIR]
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import record
import torch

from rating_models.ratings import LABELS

BUNDLE = record.ROOT / "var" / "bundles" / "default"
TEST = record.ROOT / "data" / "ratings" / "test.jsonl"
EXPERT = "text"  # the bundle's transformer expert on the prompt alone
TARGET_RATIO = 3.0
TARGET_EXPLAINED = 0.5  # items/s with explanations, over items/s without
WORKER_BATCH = 64  # the worker's INFERENCE_BATCH_SIZE by default
TARGET_RATIO_GPU = 20.0
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The dtype of each runtime's matmuls, for the peak it is compared with.
MATMUL_DTYPE = {
    "torch": "fp32",
    "torch-fp16": "fp16",
    "torch-bf16": "bf16",
    "onnx": "fp32",
    "onnx-int8": "int8",
}
TORCH_RUNTIMES = {"fp32": "torch", "fp16": "torch-fp16", "bf16": "torch-bf16"}


def parse_args():
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        help="where the models run (default: cuda when available, else cpu)",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        help="run ours as torch in this dtype (autocast for fp16 and bf16); the default on "
        "CUDA is fp16; ignored when --runtimes is given",
    )
    parser.add_argument(
        "--runtimes",
        help="comma-separated runtimes of ours, the first the headline (default: the torch "
        "runtime of --dtype on CUDA or when --dtype is given, else 'auto,onnx,onnx-int8'); "
        "fp32 torch is always run as the reference",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="inference batch of the transformer experts (default: the bundle's, 64)",
    )
    parser.add_argument(
        "--items",
        type=int,
        help="test prompts timed, for ours and the baseline (default 400; --full all 1,703)",
    )
    parser.add_argument(
        "--latency-items", type=int, help="single-item calls timed (default 100; --full 300)"
    )
    parser.add_argument("--reps", type=int, help="timed passes of ours (default 3; --full 5)")
    parser.add_argument(
        "--bundle", type=Path, default=BUNDLE, help=f"the bundle to time (default {BUNDLE})"
    )
    args = parser.parse_args()
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.dtype is None and args.device == "cuda":
        args.dtype = "fp16"
    if args.runtimes is None:
        args.runtimes = TORCH_RUNTIMES[args.dtype] if args.dtype else "auto,onnx,onnx-int8"
    from rating_models.experts import ExpertError
    from rating_models.experts.runtime import resolve

    try:  # "auto" becomes what it runs here; a runtime that cannot run here is refused
        names = [r.strip() for r in args.runtimes.split(",") if r.strip()]
        args.runtimes = list(dict.fromkeys(resolve(r, torch.device(args.device)) for r in names))
    except ExpertError as error:
        parser.error(str(error))
    if args.items is None and not args.full:
        args.items = 400  # None: all of them
    if args.latency_items is None:
        args.latency_items = 300 if args.full else 100
    if args.reps is None:
        args.reps = 5 if args.full else 3
    sizes = [args.latency_items, args.reps] + ([] if args.items is None else [args.items])
    if not args.runtimes or min(sizes) < 1:
        parser.error("--runtimes must name one, and --items, --latency-items, --reps be > 0")
    if not (args.bundle / "manifest.json").is_file():
        parser.error(f"no bundle at {args.bundle}: run `make bundle` first")
    return args


STARTED = time.perf_counter()


def say(message: str) -> None:
    """Progress, with the seconds since the start."""
    print(f"[{time.perf_counter() - STARTED:5.0f} s] {message}", flush=True)


def main() -> None:
    args = parse_args()
    import transformers

    from rating_models.bundle import Bundle
    from rating_models.examples import load_examples

    transformers.logging.set_verbosity_error()
    device = torch.device(args.device)
    every = list(dict.fromkeys(["torch", *args.runtimes]))  # fp32 torch first: the reference
    headline = args.runtimes[0]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    # -- data: all rated test items for accuracy; a seeded sample of their prompts for speed
    test = [e for e in load_examples(TEST) if e.rating is not None]
    y_true = np.array([e.rating.index for e in test])
    rng = np.random.default_rng(0)
    picked = rng.permutation(len(test))[: args.items]  # items None: all, in a random order
    prompts = [dataclasses.replace(test[i], tags=None, image=None) for i in picked]
    items = [test[i] for i in picked]  # the whole bundle's: prompts with their tags
    say(
        f"{len(test)} test items for accuracy, {len(prompts)} prompts timed, on {device} "
        f"({torch.get_num_threads()} threads); runtimes: {', '.join(every)}"
    )

    # -- the bundle in each runtime, and its ratings of every test item
    bundles, load_seconds, predictions, accuracy = {}, {}, {}, {}
    for runtime in every:
        bundles[runtime], load_s = timed(
            lambda runtime=runtime: Bundle.load(args.bundle, device=args.device, runtime=runtime)
        )
        set_batch_size(bundles[runtime], args.batch_size)
        load_seconds[runtime] = round(load_s, 2)
        predictions[runtime] = bundles[runtime].predict(test)
        accuracy[runtime] = accuracy_report(y_true, predictions[runtime], predictions["torch"])
        same = accuracy[runtime]["expert"]["same_rating_as_fp32_torch"]
        say(
            f"{runtime}: loaded in {load_s:.1f} s (exports are cached), rated the test items: "
            f"{same:.1%} of the expert's ratings as fp32 torch gives them"
        )
    expert = bundles["torch"].experts[EXPERT]

    # -- baseline: the same model through pipeline("text-classification"), one item a call
    pipe = expert_pipeline(expert, device)
    pairs = [expert._pair(e) for e in prompts]
    inputs = [{"text": a, "text_pair": b} if b else a for a, b in pairs]
    max_length = expert._max_length()

    def classify(x: str | dict) -> str:
        answer = pipe(x, truncation=True, max_length=max_length)
        return (answer[0] if isinstance(answer, list) else answer)["label"]

    # -- timing: rounds that each time a share of the baseline's prompts and then all of ours,
    # so that load from other processes falls on both alike
    for x in inputs[:10]:
        classify(x)
    for runtime in every:
        bundles[runtime].experts[EXPERT].predict(prompts[:64])
        bundles[runtime].predict(items[:64])
    labels: dict[int, str] = {}
    pipe_times: list[float] = []
    seconds = {(who, r): [] for who in ("expert", "bundle") for r in every}
    for round_ in range(args.reps):
        for row in range(round_, len(inputs), args.reps):
            sync()
            start = time.perf_counter()
            labels[row] = classify(inputs[row])
            sync()
            pipe_times.append(time.perf_counter() - start)
        for runtime in every:
            for who, model, batch in (
                ("expert", bundles[runtime].experts[EXPERT], prompts),
                ("bundle", bundles[runtime], items),
            ):
                sync()
                start = time.perf_counter()
                model.predict(batch)
                sync()
                seconds[who, runtime].append(time.perf_counter() - start)
        say(f"timing round {round_ + 1} of {args.reps} done")
    pipe_rate = len(inputs) / sum(pipe_times)
    rates = {r: len(prompts) / float(np.median(seconds["expert", r])) for r in every}
    bundle_rates = {r: len(items) / float(np.median(seconds["bundle", r])) for r in every}
    ref_ratings = predictions["torch"].experts[EXPERT].ratings[picked]
    pipe_ratings = np.array([LABELS.index(labels[row]) for row in range(len(inputs))])
    agrees = float(np.mean(pipe_ratings == ref_ratings))

    # -- single-item latency: ours one item a call (the baseline's calls above are single items)
    latency = {}
    for runtime in every:
        latency[runtime] = {
            "expert": single_item_latency(
                bundles[runtime].experts[EXPERT], prompts[: args.latency_items], sync
            ),
            "bundle": single_item_latency(bundles[runtime], items[: args.latency_items], sync),
        }

    # -- explanations on the worker's path, in the headline runtime
    explained = explanation_figures(bundles[headline], items, args.reps, sync)
    say(
        f"{headline}: worker batches of {WORKER_BATCH}, {explained['items_per_s_without']:.1f} "
        f"items/s without explanations, {explained['items_per_s_with']:.1f} with "
        f"({explained['ratio']:.2f}x); {explained['queued_share']:.0%} of items queued for a "
        f"moderator, {explained['queued_explained_in_full']:.0%} of those explained in full; "
        f"every item in full: {explained['unbounded']['items_per_s']:.1f} items/s"
    )

    # -- FLOP/s: the encoder's useful work on the timed prompts (padding not counted) against
    # this machine's matmul peak in each runtime's dtype
    tokens = np.array([len(e["input_ids"]) for e in expert._tokenize(pairs)])
    flops = float(sum(encoder_flops(int(t), expert.model.encoder.config) for t in tokens))
    peaks = {d: matmul_peak(device, d) for d in dict.fromkeys(MATMUL_DTYPE[r] for r in every)}
    peaks.setdefault("fp32", matmul_peak(device, "fp32"))

    def flop_rate(items_per_s: float, dtype: str) -> dict:
        achieved = flops / len(prompts) * items_per_s
        return {
            "achieved_gflops": round(achieved / 1e9, 2),
            "peak_gflops": round(peaks[dtype] / 1e9, 1),
            "peak_dtype": dtype,
            "fraction_of_peak": round(achieved / peaks[dtype], 4),
        }

    say(
        f"baseline: per-item pipeline {pipe_rate:.1f} items/s (agrees with the expert {agrees:.1%})"
    )
    for runtime in every:
        say(
            f"{runtime}: expert {rates[runtime]:.1f} items/s "
            f"({rates[runtime] / pipe_rate:.2f}x the pipeline), whole bundle "
            f"{bundle_rates[runtime]:.1f} items/s ({bundle_rates[runtime] / pipe_rate:.2f}x), "
            f"{flop_rate(rates[runtime], MATMUL_DTYPE[runtime])['fraction_of_peak']:.1%} of "
            f"the {MATMUL_DTYPE[runtime]} matmul peak"
        )

    ratio = rates[headline] / pipe_rate
    target = TARGET_RATIO_GPU if device.type == "cuda" else TARGET_RATIO
    record.write(
        "inference",
        size={
            "timed_prompts": len(prompts),
            "accuracy_items": len(test),
            "mean_tokens": round(float(tokens.mean()), 1),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "batch_size": expert.config.encode_batch_size,
            "reps": args.reps,
            "latency_items": min(args.latency_items, len(prompts)),
        },
        figures={
            "runtime": headline,
            "expert_items_per_s": round(rates[headline], 1),
            "bundle_items_per_s": round(bundle_rates[headline], 1),
            "bundle_vs_pipeline": round(bundle_rates[headline] / pipe_rate, 3),
            "vs_batched_fp32_torch": round(rates[headline] / rates["torch"], 3),
            "expert_items_per_s_by_runtime": {k: round(v, 1) for k, v in rates.items()},
            "bundle_items_per_s_by_runtime": {k: round(v, 1) for k, v in bundle_rates.items()},
            "latency_ms": latency,
            "flops_per_item": round(flops / len(prompts)),
            "flops": {r: flop_rate(rates[r], MATMUL_DTYPE[r]) for r in every},
            "accuracy": accuracy,
            "bundle_load_s": load_seconds,
            "explanations": explained,
            "targets": {
                f"expert >= {target:g}x pipeline": ratio >= target,
                "bundle >= pipeline": bundle_rates[headline] >= pipe_rate,
                f"with explanations >= {TARGET_EXPLAINED:g}x without": explained["ratio"]
                >= TARGET_EXPLAINED,
            },
        },
        baseline={
            "what": "the same expert (encoder, pooling, head) as a transformers model through "
            'pipeline("text-classification"), one prompt per call, fp32',
            "items_per_s": round(pipe_rate, 1),
            "latency_ms": {
                k: round(v * 1000, 2) for k, v in record.percentiles(pipe_times).items()
            },
            "agrees_with_expert": round(agrees, 4),
            **flop_rate(pipe_rate, "fp32"),
        },
        ratio=ratio,
        out=args.out,
    )


# -----------------------------------------------------------------------------------------
# the baseline model


def expert_pipeline(expert: Any, device: torch.device):
    """`pipeline("text-classification")` over the expert's own encoder, pooling and head."""
    from transformers import PretrainedConfig, PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput
    from transformers.utils import logging as transformers_logging

    class ExpertForSequenceClassification(PreTrainedModel):
        config_class = PretrainedConfig
        base_model_prefix = "classifier"
        _supports_sdpa = True  # what the encoder inside runs, as in the expert

        def __init__(self, config: PretrainedConfig, classifier: torch.nn.Module) -> None:
            super().__init__(config)
            self.post_init()
            # Attached after post_init, so that its trained weights are never re-initialised.
            self.classifier = classifier

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            batch = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                batch["token_type_ids"] = token_type_ids
            logits, _ = self.classifier(batch)  # (1, 5): encoder, mean pooling, head
            return SequenceClassifierOutput(logits=logits)

    config = copy.deepcopy(expert.model.encoder.config)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    model = ExpertForSequenceClassification(config, expert.model).eval()
    # The pipeline logs an error for any class outside its list of known classifiers; this
    # one is the expert itself, so the message is not news.
    transformers_logging.set_verbosity(transformers_logging.CRITICAL)
    try:
        return pipeline(
            "text-classification", model=model, tokenizer=expert.tokenizer, device=device
        )
    finally:
        transformers_logging.set_verbosity_error()


# -----------------------------------------------------------------------------------------
# measurements


def timed(make: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    made = make()
    return made, time.perf_counter() - start


def set_batch_size(bundle: Any, batch_size: int | None) -> None:
    if batch_size is None:
        return
    for expert in bundle.experts.values():
        if hasattr(expert.config, "encode_batch_size"):
            expert.config.encode_batch_size = batch_size


def rate(run: Callable[[], Any], n: int, reps: int, sync: Callable[[], None]) -> float:
    """Items/s of the median of `reps` timed passes."""
    seconds = []
    for _ in range(reps):
        sync()
        start = time.perf_counter()
        run()
        sync()
        seconds.append(time.perf_counter() - start)
    return n / float(np.median(seconds))


def worker_pass(
    bundle: Any, items: Sequence[Any], explain: str, sync: Callable[[], None]
) -> tuple[float, int, int]:
    """Seconds to rate `items` as the worker does, in batches of WORKER_BATCH; how many of
    them a moderator would see, and how many of those were explained in full. `explain`:
    "off", "budget" (within each batch's prediction time, as the worker) or "unbounded"
    (every item in full, whoever sees it).

    A moderator sees what the bundle's rule does not publish on its own (all items without
    a rule); the worker also leaves out items with no open review, which this cannot know."""
    from rating_models.explain import explain as explain_batch

    queued_count = in_full = 0
    sync()
    start = time.perf_counter()
    for first in range(0, len(items), WORKER_BATCH):
        batch = items[first : first + WORKER_BATCH]
        began = time.perf_counter()
        prediction = bundle.predict(batch)
        sync()
        if explain == "off":
            continue
        published = prediction.auto_publish
        queued = np.ones(len(batch), dtype=bool) if published is None else ~published
        if explain == "budget":
            budget, only = time.perf_counter() - began, queued
        else:
            budget, only = None, None
        found = explain_batch(bundle, batch, prediction, budget_seconds=budget, queued=only)
        queued_count += int(queued.sum())
        in_full += sum(not e["partial"] for e, q in zip(found, queued, strict=True) if q)
    sync()
    return time.perf_counter() - start, queued_count, in_full


def explanation_figures(
    bundle: Any, items: Sequence[Any], reps: int, sync: Callable[[], None]
) -> dict:
    """Items/s of the worker's path with explanations within the budget and without, the
    median of `reps` rounds that each run both; then one batch explained in full."""
    worker_pass(bundle, items[:WORKER_BATCH], "budget", sync)  # warm: learns occlusion's cost
    without, within, in_full = [], [], []
    for _ in range(reps):
        without.append(worker_pass(bundle, items, "off", sync)[0])
        seconds, queued, explained = worker_pass(bundle, items, "budget", sync)
        within.append(seconds)
        in_full.append(explained)
    rate_without = len(items) / float(np.median(without))
    rate_with = len(items) / float(np.median(within))
    batch = items[:WORKER_BATCH]
    unbounded, _, _ = worker_pass(bundle, batch, "unbounded", sync)
    return {
        "batch_size": WORKER_BATCH,
        "items_per_s_without": round(rate_without, 1),
        "items_per_s_with": round(rate_with, 1),
        "ratio": round(rate_with / rate_without, 3),
        "queued_share": round(queued / len(items), 3),
        "queued_explained_in_full": round(float(np.median(in_full)) / max(queued, 1), 3),
        "unbounded": {
            "items": len(batch),
            "items_per_s": round(len(batch) / unbounded, 1),
            "seconds_per_item": round(unbounded / len(batch), 4),
        },
    }


def single_item_latency(model: Any, items: Sequence[Any], sync: Callable[[], None]) -> dict:
    """p50/p95/p99 in ms of `model.predict([item])`, one item at a time."""
    model.predict(list(items[:5]))
    seconds = []
    for item in items:
        sync()
        start = time.perf_counter()
        model.predict([item])
        sync()
        seconds.append(time.perf_counter() - start)
    return {k: round(v * 1000, 2) for k, v in record.percentiles(seconds).items()}


def encoder_flops(tokens: int, config: Any) -> float:
    """Multiply-adds x 2 of one unpadded item through a BERT-style encoder.

    Per layer: the Q, K, V and output projections (4 T H^2), the feed-forward (2 T H I) and
    attention's scores and weighted sum (2 T^2 H), each a multiply-add. Embedding look-ups,
    norms, softmax and the 0.1 MFLOP head are left out.
    """
    h, i = config.hidden_size, config.intermediate_size
    per_layer = 4 * tokens * h * h + 2 * tokens * h * i + 2 * tokens * tokens * h
    return 2.0 * config.num_hidden_layers * per_layer


def matmul_peak(device: torch.device, dtype: str) -> float:
    """FLOP/s of a warm square matmul on `device` in `dtype`: the best of several.

    `torch.matmul` for the float dtypes; `torch._int_mm` (int8 in, int32 out) for int8.
    """
    n = 8192 if device.type == "cuda" else 2048
    if dtype == "int8":
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        matmul = torch._int_mm
    else:
        a = torch.randn(n, n, device=device).to(DTYPES[dtype])
        b = torch.randn(n, n, device=device).to(DTYPES[dtype])
        matmul = torch.matmul
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(3):  # warm-up
        matmul(a, b)
    for _ in range(20):  # the best of many: other processes share this machine
        sync()
        start = time.perf_counter()
        matmul(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def accuracy_report(y_true: np.ndarray, prediction: Any, reference: Any) -> dict:
    """Macro-F1, DCM and agreement with fp32 torch, for the expert and the suggested rating."""
    from rating_models.metrics import rating_report

    figures = {}
    for name, ratings, ref in (
        ("expert", prediction.experts[EXPERT].ratings, reference.experts[EXPERT].ratings),
        ("suggested", prediction.suggested, reference.suggested),
    ):
        report = rating_report(y_true, ratings)
        figures[name] = {
            "macro_f1": round(report["macro_f1"], 4),
            "dcm_rate": round(report["dcm_rate"], 4),
            "dcm_count": report["dcm_count"],
            "severe_dcm_count": report["severe_dcm_count"],
            "accuracy": round(report["accuracy"], 4),
            "same_rating_as_fp32_torch": round(float(np.mean(ratings == ref)), 4),
        }
    return figures


if __name__ == "__main__":
    main()
