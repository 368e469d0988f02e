"""Examples: one media item as the models see it, and loading them from data files.

The data format is the rating corpus's: one object per JSONL line (or one CSV row) with `id`,
`prompt`, `negative_prompt`, `tags` (`[[name, confidence], ...]`), `rating`, `source`, and an
optional `image` path relative to the file. Every error names the file, the line and the field.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from rating_models.ratings import Blocked, Rating, RatingError, parse_label


class DataError(ValueError):
    """A data file that cannot be read as examples."""


Tags = tuple[tuple[str, float], ...]


@dataclass(frozen=True, eq=False)
class Example:
    """One media item.

    `tags` is None when the item has not been through a tagger (at generation time), and an
    empty tuple when the tagger ran and found nothing: experts that need tags abstain only on
    the first. `label` is the rating to learn or score against, Blocked, or None.
    """

    id: str
    prompt: str = ""
    negative_prompt: str = ""
    tags: Tags | None = None
    image: Image.Image | None = field(default=None, repr=False)
    label: Rating | Blocked | None = None
    source: str = ""

    @property
    def rating(self) -> Rating | None:
        """The label when it is a rating; None for Blocked or unlabelled items."""
        return self.label if isinstance(self.label, Rating) else None


def rated(examples: Iterable[Example]) -> list[Example]:
    """Examples whose label is a rating: Blocked and unlabelled items are never trained on."""
    return [e for e in examples if e.rating is not None]


def fingerprint(examples: Sequence[Example]) -> str:
    """A stable digest of what a model learns from: ids, inputs and labels, in order."""
    digest = hashlib.sha256()
    for e in examples:
        record = [e.id, e.prompt, e.negative_prompt, e.tags, str(e.label)]
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        if e.image is not None:
            digest.update(e.image.tobytes())
    return digest.hexdigest()


def load_examples(path: str | Path) -> list[Example]:
    """Load examples from a `.jsonl` or `.csv` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return list(_read_jsonl(path))
    if suffix == ".csv":
        return list(_read_csv(path))
    raise DataError(f"{path}: unknown data format {suffix!r} (expected .jsonl or .csv)")


def example_from_record(record: dict, *, where: str, base_dir: Path | None = None) -> Example:
    """Build an Example from one parsed record; `where` prefixes every error ("file:line")."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    item_id = record.get("id")
    if item_id is None or str(item_id).strip() == "":
        raise DataError(f"{where}: field 'id' is missing")
    return Example(
        id=str(item_id),
        prompt=_text(record, "prompt", where),
        negative_prompt=_text(record, "negative_prompt", where),
        tags=_tags(record.get("tags"), where),
        image=_image(record.get("image"), where, base_dir),
        label=_label(record.get("rating"), where),
        source=_text(record, "source", where),
    )


def _read_jsonl(path: Path) -> Iterable[Example]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: invalid JSON ({error.msg})") from None
            yield example_from_record(record, where=where, base_dir=path.parent)


def _read_csv(path: Path) -> Iterable[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise DataError(f"{path}:1: header has no 'id' column")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            record: dict = dict(row)
            if record.get("tags"):
                try:
                    record["tags"] = json.loads(record["tags"])
                except json.JSONDecodeError:
                    # CSV exports often write tags as "a, b, c" without confidences.
                    record["tags"] = [[t.strip(), 1.0] for t in record["tags"].split(",")]
            for key in ("rating", "image", "tags"):
                if record.get(key) == "":
                    record[key] = None
            yield example_from_record(record, where=where, base_dir=path.parent)


def _text(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _tags(value: object, where: str) -> Tags | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise DataError(f"{where}: field 'tags' must be a list of [name, confidence] pairs")
    tags = []
    for position, item in enumerate(value):
        if isinstance(item, str):
            name, confidence = item, 1.0
        elif isinstance(item, list | tuple) and len(item) == 2:
            name, confidence = item
        else:
            raise DataError(f"{where}: field 'tags'[{position}] must be [name, confidence]")
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{where}: field 'tags'[{position}] has no tag name")
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise DataError(f"{where}: field 'tags'[{position}] confidence must be a number")
        if not 0.0 <= float(confidence) <= 1.0:
            raise DataError(f"{where}: field 'tags'[{position}] confidence must be within 0-1")
        tags.append((name.strip(), float(confidence)))
    return tuple(tags)


def _label(value: object, where: str) -> Rating | Blocked | None:
    if value is None:
        return None
    try:
        return parse_label(value)
    except RatingError as error:
        raise DataError(f"{where}: field 'rating': {error}") from None


def _image(value: object, where: str, base_dir: Path | None) -> Image.Image | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: field 'image' must be a file path")
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as error:
        raise DataError(f"{where}: field 'image': cannot read {path} ({error})") from None
