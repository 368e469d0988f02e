"""Import items through the ingestion service, the same code the API runs.

    manage.py import_items data/ratings/train.jsonl [--images DIR] [--limit N]
                           [--unlabelled-share 0.3]
    manage.py import_items --civitai page.json

Re-running an import creates nothing new: items are matched by (source, external id).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from moderation.media.services import item_create
from moderation.media.validation import ValidationProblem

# The corpus's files carry their split in their name; `val` is a training-side split.
FILE_SPLITS = {"train": "train", "val": "train", "test": "test"}
CIVITAI_KEPT = ("url", "hash", "width", "height", "nsfw", "nsfwLevel", "createdAt", "postId")


class RecordError(ValueError):
    """A record that cannot become an item; the message names the field."""


@dataclass
class Summary:
    created: int = 0
    existing: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def unlabelled(item_id: str, share: float) -> bool:
    """Whether the item arrives without its label, chosen by a hash of its id so that a
    re-import picks the same items."""
    bucket = int(hashlib.sha256((item_id + "/unlabelled").encode()).hexdigest(), 16) % 1000
    return bucket < round(share * 1000)


class Command(BaseCommand):
    help = "Import corpus items (JSONL or CSV) or a Civitai images API page (JSON)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", type=Path, help="a corpus .jsonl or .csv file")
        parser.add_argument(
            "--civitai", type=Path, metavar="FILE", help="a page of Civitai's images API (JSON)"
        )
        parser.add_argument("--images", type=Path, help="folder that `image` paths are relative to")
        parser.add_argument("--limit", type=int, help="import at most this many records")
        parser.add_argument(
            "--unlabelled-share",
            type=float,
            default=0.0,
            help="share of corpus items imported without their label, to wait in the review "
            "queue (chosen by a hash of the id)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path, civitai = options["file"], options["civitai"]
        if (path is None) == (civitai is None):
            raise CommandError("give either a corpus FILE or --civitai FILE")
        share = options["unlabelled_share"]
        if not 0.0 <= share <= 1.0:
            raise CommandError("--unlabelled-share must be between 0 and 1")
        if options["limit"] is not None and options["limit"] < 0:
            raise CommandError("--limit must not be negative")
        source_file = civitai or path
        if not source_file.is_file():
            raise CommandError(f"{source_file}: no such file")
        if civitai is not None:
            records = civitai_records(civitai)
        else:
            images = options["images"] or path.parent
            records = corpus_records(path, images_dir=images, unlabelled_share=share)

        summary = Summary()
        bar = tqdm(
            records,
            desc=f"importing {source_file.name}",
            unit="item",
            total=options["limit"],
            disable=options["verbosity"] == 0,
        )
        for count, (where, fields) in enumerate(bar):
            if options["limit"] is not None and count >= options["limit"]:
                break
            if isinstance(fields, RecordError):
                summary.errors.append((where, str(fields)))
                continue
            try:
                _, created = item_create(**fields)
            except ValidationProblem as problem:
                summary.errors.append((where, str(problem)))
                continue
            if created:
                summary.created += 1
            else:
                summary.existing += 1
        bar.close()
        self._report(summary)

    def _report(self, summary: Summary) -> None:
        self.stdout.write(
            f"created {summary.created}, existing {summary.existing}, errors {len(summary.errors)}"
        )
        for where, message in summary.errors:
            self.stdout.write(f"  {where}: {message}")


# -------------------------------------------------------------------------- corpus format


def corpus_records(
    path: Path, *, images_dir: Path, unlabelled_share: float = 0.0
) -> Iterator[tuple[str, dict | RecordError]]:
    """(where, item_create arguments or the error) for each record of a corpus file."""
    file_split = FILE_SPLITS.get(path.stem.lower())
    for where, record in _corpus_rows(path):
        if isinstance(record, RecordError):
            yield where, record
            continue
        try:
            yield where, _corpus_fields(record, file_split, images_dir, unlabelled_share)
        except RecordError as error:
            yield where, error


def _corpus_rows(path: Path) -> Iterator[tuple[str, dict | RecordError]]:
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8", newline="") as handle:
        if suffix in {".jsonl", ".ndjson"}:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    yield f"line {number}", RecordError(f"invalid JSON ({error.msg})")
                    continue
                if not isinstance(record, dict):
                    yield f"line {number}", RecordError("expected a JSON object")
                    continue
                yield f"line {number}", record
        elif suffix == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                yield f"line {reader.line_num}", _csv_record(row)
        else:
            raise CommandError(f"{path}: unknown format {suffix!r} (expected .jsonl or .csv)")


def _csv_record(row: dict[str, str]) -> dict:
    record: dict[str, Any] = {k: (None if v == "" else v) for k, v in row.items() if k}
    tags = record.get("tags")
    if tags is not None:
        try:
            record["tags"] = json.loads(tags)
        except json.JSONDecodeError:
            # CSV exports often write tags as "a, b, c" without confidences.
            record["tags"] = [[t.strip(), 1.0] for t in tags.split(",") if t.strip()]
    return record


def _corpus_fields(
    record: dict, file_split: str | None, images_dir: Path, unlabelled_share: float
) -> dict:
    item_id = record.get("id")
    if item_id is None or str(item_id).strip() == "":
        raise RecordError("id: missing")
    item_id = str(item_id).strip()
    label = record.get("rating")
    if label is not None and unlabelled(item_id, unlabelled_share):
        label = None
    fields = {
        "prompt": record.get("prompt") or "",
        "negative_prompt": record.get("negative_prompt") or "",
        "tags": record.get("tags"),
        "source": record.get("source") or "corpus",
        "external_id": item_id,
        "label": label,
        "label_origin": "corpus",
        "split": record.get("split") or file_split,
    }
    image = record.get("image")
    if image is not None:
        if not isinstance(image, str):
            raise RecordError("image: must be a path relative to --images")
        try:
            fields["image"] = (images_dir / image).read_bytes()
        except OSError as error:
            raise RecordError(
                f"image: cannot read {images_dir / image} ({error.strerror})"
            ) from None
    return fields


# --------------------------------------------------------------------------------- Civitai


def civitai_records(path: Path) -> Iterator[tuple[str, dict | RecordError]]:
    """(where, item_create arguments or the error) for each item of an images API page.

    The image itself is not downloaded: the item is prompt-only and keeps the URL.
    """
    try:
        page = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: not a JSON document ({error})") from None
    items = page.get("items") if isinstance(page, dict) else None
    if not isinstance(items, list):
        raise CommandError(f"{path}: expected an object with an `items` list")
    for number, entry in enumerate(items, start=1):
        where = f"item {number}"
        try:
            yield where, _civitai_fields(entry)
        except RecordError as error:
            yield where, error


def _civitai_fields(entry: object) -> dict:
    if not isinstance(entry, dict):
        raise RecordError("expected an object")
    if entry.get("id") is None:
        raise RecordError("id: missing")
    meta = entry.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError("meta: expected an object or null")
    # browsingLevel is the current scale; nsfwLevel may be a level or a legacy name.
    label = entry.get("browsingLevel")
    if label is None:
        label = entry.get("nsfwLevel")
    generation = {
        k: v
        for k, v in meta.items()
        if k not in ("prompt", "negativePrompt") and isinstance(v, str | int | float | bool)
    }
    metadata: dict[str, Any] = {"civitai": {k: entry[k] for k in CIVITAI_KEPT if k in entry}}
    if generation:
        metadata["generation"] = generation
    return {
        "prompt": meta.get("prompt") or "",
        "negative_prompt": meta.get("negativePrompt") or "",
        "source": "civitai",
        "external_id": str(entry["id"]),
        "metadata": metadata,
        "label": label,
        "label_origin": "civitai",
    }
