from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from moderation.media.management.commands.import_items import unlabelled
from moderation.media.models import MediaItem
from moderation.review.models import Label, ReviewState
from tests.moderation.factories import png_bytes

pytestmark = pytest.mark.django_db

VAL = Path(settings.BASE_DIR) / "data" / "ratings" / "val.jsonl"
# A copy of ../shared/data/formats/civitai-images-api-sample.json (made-up values).
CIVITAI = Path(__file__).parent / "data" / "civitai-images-api-sample.json"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_items", *args, verbosity=0, stdout=out)
    return out.getvalue()


def val_records(count: int) -> list[dict]:
    with VAL.open() as lines:
        return [json.loads(next(lines)) for _ in range(count)]


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------- corpus


def test_a_slice_of_the_corpus_is_imported_with_its_labels() -> None:
    records = val_records(12)
    output = run(str(VAL), "--limit", "12")
    assert "created 12, existing 0, errors 0" in output
    for record in records:
        item = MediaItem.objects.get(external_id=record["id"])
        assert (item.prompt, item.source) == (record["prompt"], record["source"])
        label = item.labels.get()
        assert (label.origin, label.moderator) == ("corpus", None)
        assert label.level == {"PG": 1, "PG13": 2, "R": 4, "X": 8, "XXX": 16}[record["rating"]]


def test_val_items_are_train_items() -> None:
    run(str(VAL), "--limit", "10")
    assert set(MediaItem.objects.values_list("split", flat=True)) == {"train"}


def test_items_of_a_test_file_are_test_items(tmp_path: Path) -> None:
    run(str(write_jsonl(tmp_path / "test.jsonl", val_records(5))))
    assert list(MediaItem.objects.values_list("split", flat=True).distinct()) == ["test"]


def test_a_split_field_wins_over_the_file_name(tmp_path: Path) -> None:
    records = [{**r, "split": "test"} for r in val_records(3)]
    run(str(write_jsonl(tmp_path / "train.jsonl", records)))
    assert set(MediaItem.objects.values_list("split", flat=True)) == {"test"}


def test_the_unlabelled_share_waits_in_the_review_queue() -> None:
    records = val_records(40)
    run(str(VAL), "--limit", "40", "--unlabelled-share", "0.3")
    waiting = {r["id"] for r in records if unlabelled(r["id"], 0.3)}
    assert 0 < len(waiting) < 40
    queued = ReviewState.objects.filter(state=ReviewState.State.QUEUED)
    assert set(queued.values_list("item__external_id", flat=True)) == waiting
    assert not Label.objects.filter(item__external_id__in=waiting).exists()
    assert Label.objects.count() == 40 - len(waiting)


def test_importing_twice_creates_nothing_new() -> None:
    run(str(VAL), "--limit", "5")
    output = run(str(VAL), "--limit", "5")
    assert "created 0, existing 5, errors 0" in output
    assert MediaItem.objects.count() == 5


def test_bad_records_are_reported_by_line_and_the_rest_imported(tmp_path: Path) -> None:
    good = val_records(2)
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            good[0],
            "{broken json",
            {"id": "bad-rating", "prompt": "a cat", "rating": "PG-17"},
            {"prompt": "no id"},
            {"id": "nul", "prompt": "a\x00cat", "rating": "PG"},
            good[1],
        ],
    )
    output = run(str(path))
    assert "created 2, existing 0, errors 4" in output
    assert "line 2: invalid JSON" in output
    assert "line 3: label:" in output
    assert "line 4: id: missing" in output
    assert "line 5: prompt:" in output


def test_images_are_read_relative_to_the_images_folder(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(png_bytes(size=(12, 10)))
    record = {"id": "pic-1", "prompt": "a cat", "rating": "PG", "image": "a.png"}
    missing = {"id": "pic-2", "prompt": "a dog", "rating": "PG", "image": "missing.png"}
    path = write_jsonl(tmp_path / "train.jsonl", [record, missing])
    output = run(str(path), "--images", str(tmp_path / "pics"))
    item = MediaItem.objects.get(external_id="pic-1")
    assert (item.width, item.height) == (12, 10)
    assert "line 2: image: cannot read" in output


def test_a_csv_corpus_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "id,prompt,negative_prompt,tags,rating,source\n"
        'c-1,a cat,,"[[""cat"", 0.9]]",PG,coco\n'
        "c-2,a nude,,nude,X,i2p\n"
    )
    run(str(path))
    assert MediaItem.objects.get(external_id="c-1").tags == [["cat", 0.9]]
    assert MediaItem.objects.get(external_id="c-2").labels.get().level == 8


def test_the_command_wants_exactly_one_input() -> None:
    with pytest.raises(CommandError):
        run()
    with pytest.raises(CommandError):
        run(str(VAL), "--civitai", str(CIVITAI))


# ---------------------------------------------------------------------------------- Civitai


def test_a_civitai_page_is_imported_with_its_levels() -> None:
    output = run("--civitai", str(CIVITAI))
    assert "created 3, existing 0, errors 0" in output
    levels = {
        item.external_id: item.labels.get().level
        for item in MediaItem.objects.filter(source="civitai")
    }
    # browsingLevel wins; the third has only nsfwLevel 16.
    assert levels == {"1000001": 1, "1000002": 4, "1000003": 16}
    assert set(Label.objects.values_list("origin", flat=True)) == {"civitai"}


def test_civitai_prompts_are_kept_and_a_null_meta_is_prompt_less() -> None:
    run("--civitai", str(CIVITAI))
    first = MediaItem.objects.get(external_id="1000001")
    assert first.prompt.startswith("<lora:paperCut_v2:0.7>, a lighthouse")
    assert first.negative_prompt.startswith("(worst quality")
    assert first.metadata["civitai"]["url"].endswith("a.jpeg")
    assert first.metadata["generation"]["steps"] == 28
    assert not first.image
    third = MediaItem.objects.get(external_id="1000003")
    assert (third.prompt, third.negative_prompt) == ("", "")


def test_a_legacy_nsfw_level_name_is_read(tmp_path: Path) -> None:
    page = {"items": [{"id": 7, "nsfwLevel": "Mature", "meta": {"prompt": "a bikini"}}]}
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page))
    run("--civitai", str(path))
    assert MediaItem.objects.get(external_id="7").labels.get().level == 4


# --------------------------------------------------------------------------------- clients


def test_an_issued_client_token_authenticates() -> None:
    out = io.StringIO()
    call_command("api_client", "acme", stdout=out, stderr=io.StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    assert client.get("/api/v1/items/").status_code == 200


def test_a_client_name_is_issued_once() -> None:
    call_command("api_client", "acme", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError):
        call_command("api_client", "acme", stdout=io.StringIO(), stderr=io.StringIO())
