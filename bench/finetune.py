"""Fine-tuning: seconds for one epoch of the `full` preset's text expert, end to end.

The `full` preset fine-tunes the transformer experts' encoders (MiniLM here, a production
backbone on a GPU worker) instead of training a head on frozen embeddings. This times one
epoch of that, on the corpus's train split with val for the epoch's validation pass, on
whatever device torch picks (`--device`), so that the cost of making `full` the default is a
figure rather than a guess.

Baseline, same run: the `fast` preset's way of training the same expert (frozen encoder: every
text encoded once, then the head trained to early stopping), on the same items. `ratio` =
frozen fit seconds / fine-tune epoch seconds, as every benchmark's ratio (baseline time over
ours): below 1, one fine-tune epoch costs 1 / ratio frozen fits.

    python bench/finetune.py [--items N] [--device cpu|cuda] [--full]

`--items` trains on the first N training items (default all 6,013); `--full` is the same as
the default here: the corpus is the full size.
"""

from __future__ import annotations

import time

import record

DATA = record.ROOT / "data" / "ratings"


def main() -> None:
    parser = record.parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=None, help="training items (all)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    args = parser.parse_args()

    import torch

    from rating_models.examples import load_examples
    from rating_models.experts.transformer import TransformerConfig, TransformerExpert

    train = load_examples(DATA / "train.jsonl")[: args.items]
    val = load_examples(DATA / "val.jsonl")
    print(
        f"{len(train)} training items, {len(val)} validation items, torch threads "
        f"{torch.get_num_threads()}"
    )

    def timed(mode: str, **settings) -> tuple[float, dict]:
        expert = TransformerExpert(
            "text", TransformerConfig(mode=mode, device=args.device, **settings)
        )
        start = time.perf_counter()
        report = expert.fit(train, val, progress=True)
        return time.perf_counter() - start, report

    finetune_s, finetune = timed("finetune", epochs=1, patience=1)
    frozen_s, frozen = timed("frozen")
    record.write(
        "finetune",
        size={"train_items": len(train), "val_items": len(val), "device": args.device},
        figures={
            "finetune_epoch_s": round(finetune_s, 1),
            "finetune_items_per_s": round(len(train) / finetune_s, 1),
            "finetune_val_loss": finetune["best_val_loss"],
        },
        baseline={
            "frozen_fit_s": round(frozen_s, 1),
            "frozen_epochs_run": frozen["epochs_run"],
            "frozen_val_loss": frozen["best_val_loss"],
        },
        ratio=frozen_s / finetune_s,
        out=args.out,
    )


if __name__ == "__main__":
    main()
