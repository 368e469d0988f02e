"""Examples: the Example record, loading JSONL and CSV, and every error naming file/line/field."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from rating_models.examples import DataError, fingerprint, load_examples, rated
from rating_models.ratings import BLOCKED, Rating
from tests.factories import make_example

VAL_FILE = Path(__file__).resolve().parents[2] / "data" / "ratings" / "val.jsonl"


def _record(**overrides) -> dict:
    record = {
        "id": "i2p-1",
        "prompt": "a cat on a sofa",
        "negative_prompt": "",
        "tags": [["cat", 1.0], ["sofa", 0.5]],
        "rating": "PG",
        "source": "i2p",
    }
    record.update(overrides)
    return record


def _write_jsonl(path: Path, *records) -> Path:
    """Write records (dicts, or raw strings written as they are) one per line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    fieldnames = fieldnames or ["id", "prompt", "negative_prompt", "tags", "rating", "source"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_examples(path)
    return str(caught.value)


# -- factory -----------------------------------------------------------------------------------


def test_factory_gives_distinct_ids_and_documented_defaults():
    first, second = make_example(), make_example()
    assert first.id != second.id
    assert re.fullmatch(r"ex-\d+", first.id)
    assert first.prompt == "a cat on a sofa"
    assert first.tags == ()
    assert first.label is None
    assert first.source == "test"


# -- JSONL -------------------------------------------------------------------------------------


def test_loads_jsonl_fields(tmp_path):
    path = _write_jsonl(
        tmp_path / "data.jsonl", _record(negative_prompt="blurry", rating="R", source="coco")
    )
    [example] = load_examples(path)
    assert example.id == "i2p-1"
    assert example.prompt == "a cat on a sofa"
    assert example.negative_prompt == "blurry"
    assert example.tags == (("cat", 1.0), ("sofa", 0.5))
    assert example.label is Rating.R
    assert example.rating is Rating.R
    assert example.source == "coco"
    assert example.image is None


def test_loads_jsonl_in_file_order(tmp_path):
    path = _write_jsonl(
        tmp_path / "data.jsonl", *(_record(id=f"item-{i}", rating="PG") for i in range(5))
    )
    assert [e.id for e in load_examples(path)] == [f"item-{i}" for i in range(5)]


def test_ndjson_extension_is_read_as_jsonl(tmp_path):
    path = _write_jsonl(tmp_path / "data.ndjson", _record())
    assert len(load_examples(path)) == 1


def test_blank_lines_are_skipped(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", "", _record(id="a"), "   ", "", _record(id="b"))
    assert [e.id for e in load_examples(path)] == ["a", "b"]


def test_blank_lines_still_count_towards_error_line_numbers(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", "", _record(id="a"), "", _record(id=None))
    assert f"{path}:4:" in _load_error(path)


def test_missing_optional_text_fields_load_as_empty_strings(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", {"id": "x"})
    [example] = load_examples(path)
    assert (example.prompt, example.negative_prompt, example.source) == ("", "", "")
    assert example.label is None


def test_numeric_id_is_read_as_text(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(id=123))
    assert load_examples(path)[0].id == "123"


def test_numeric_rating_is_a_level(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(rating=2), _record(id="b", rating="8"))
    assert [e.label for e in load_examples(path)] == [Rating.PG13, Rating.X]


def test_missing_tags_key_loads_as_none(tmp_path):
    record = _record()
    del record["tags"]
    [example] = load_examples(_write_jsonl(tmp_path / "data.jsonl", record))
    assert example.tags is None


def test_null_tags_load_as_none(tmp_path):
    [example] = load_examples(_write_jsonl(tmp_path / "data.jsonl", _record(tags=None)))
    assert example.tags is None


def test_empty_tags_list_loads_as_empty_tuple_not_none(tmp_path):
    [example] = load_examples(_write_jsonl(tmp_path / "data.jsonl", _record(tags=[])))
    assert example.tags == ()
    assert example.tags is not None


def test_bare_string_tag_gets_confidence_one(tmp_path):
    [example] = load_examples(_write_jsonl(tmp_path / "data.jsonl", _record(tags=["nude"])))
    assert example.tags == (("nude", 1.0),)


def test_tag_names_are_stripped_and_integer_confidences_become_floats(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(tags=[[" nude ", 1], ["cat", 0]]))
    [example] = load_examples(path)
    assert example.tags == (("nude", 1.0), ("cat", 0.0))
    assert all(isinstance(conf, float) for _, conf in example.tags)


def test_blocked_label_loads_and_rating_is_none(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(rating="Blocked"))
    [example] = load_examples(path)
    assert example.label is BLOCKED
    assert example.rating is None


def test_missing_rating_loads_as_unlabelled(tmp_path):
    record = _record()
    del record["rating"]
    [example] = load_examples(_write_jsonl(tmp_path / "data.jsonl", record))
    assert example.label is None
    assert example.rating is None


# -- JSONL errors: file, line and field --------------------------------------------------------


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(), '{"id": "b", "prompt": ')
    message = _load_error(path)
    assert f"{path}:2:" in message
    assert "invalid JSON" in message


def test_json_line_that_is_not_an_object_is_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", "[1, 2]")
    message = _load_error(path)
    assert f"{path}:1:" in message
    assert "expected an object" in message


@pytest.mark.parametrize("bad_id", [None, "", "   "])
def test_missing_id_names_file_line_and_field(tmp_path, bad_id):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(), _record(id=bad_id))
    message = _load_error(path)
    assert f"{path}:2:" in message
    assert "'id'" in message


def test_absent_id_key_is_an_error(tmp_path):
    record = _record()
    del record["id"]
    message = _load_error(_write_jsonl(tmp_path / "data.jsonl", record))
    assert "'id' is missing" in message


@pytest.mark.parametrize("bad_rating", ["PG-14", "safe", 3, 2.5, True])
def test_bad_rating_names_file_line_field_and_value(tmp_path, bad_rating):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(rating=bad_rating))
    message = _load_error(path)
    assert f"{path}:1:" in message
    assert "'rating'" in message
    assert repr(bad_rating) in message


@pytest.mark.parametrize("bad_tags", ["nude, 1girl", {"nude": 1.0}, 1.0])
def test_tags_not_a_list_names_the_field(tmp_path, bad_tags):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(tags=bad_tags))
    message = _load_error(path)
    assert f"{path}:1:" in message
    assert "'tags' must be a list" in message


@pytest.mark.parametrize("confidence", [1.5, -0.1, float("nan"), float("inf")])
def test_tag_confidence_outside_zero_to_one_is_an_error(tmp_path, confidence):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(tags=[["cat", 0.5], ["nude", confidence]]))
    message = _load_error(path)
    assert f"{path}:1:" in message
    assert "'tags'[1]" in message
    assert "within 0-1" in message


@pytest.mark.parametrize("confidence", ["0.9", None, True, [0.9]])
def test_tag_confidence_that_is_not_a_number_is_an_error(tmp_path, confidence):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(tags=[["nude", confidence]]))
    message = _load_error(path)
    assert "'tags'[0]" in message
    assert "must be a number" in message


@pytest.mark.parametrize("item", [["nude"], ["nude", 0.5, "extra"], 7])
def test_tag_that_is_not_a_pair_is_an_error(tmp_path, item):
    message = _load_error(_write_jsonl(tmp_path / "data.jsonl", _record(tags=[item])))
    assert "'tags'[0] must be [name, confidence]" in message


@pytest.mark.parametrize("name", ["", "  ", 5])
def test_tag_without_a_name_is_an_error(tmp_path, name):
    message = _load_error(_write_jsonl(tmp_path / "data.jsonl", _record(tags=[[name, 0.5]])))
    assert "'tags'[0] has no tag name" in message


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "source"])
def test_text_field_that_is_not_a_string_names_the_field(tmp_path, field):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(**{field: 42}))
    message = _load_error(path)
    assert f"{path}:1:" in message
    assert f"'{field}' must be a string" in message


def test_unknown_extension_names_file_and_extension(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text(json.dumps(_record()) + "\n")
    message = _load_error(path)
    assert str(path) in message
    assert "'.txt'" in message


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.jsonl"
    message = _load_error(path)
    assert str(path) in message
    assert "no such file" in message


def test_directory_is_not_a_data_file(tmp_path):
    directory = tmp_path / "folder.jsonl"
    directory.mkdir()
    assert "no such file" in _load_error(directory)


# -- images ------------------------------------------------------------------------------------


def test_image_path_is_relative_to_the_data_file_and_loads_as_rgb(tmp_path):
    Image.new("L", (4, 3), color=128).save(tmp_path / "pic.png")
    [example] = load_examples(_write_jsonl(tmp_path / "data.jsonl", _record(image="pic.png")))
    assert example.image is not None
    assert example.image.size == (4, 3)
    assert example.image.mode == "RGB"


def test_missing_image_names_file_line_field_and_image_path(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(), _record(image="missing.png"))
    message = _load_error(path)
    assert f"{path}:2:" in message
    assert "'image'" in message
    assert "missing.png" in message


def test_file_that_is_not_an_image_is_an_error(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"this is not a png")
    path = _write_jsonl(tmp_path / "data.jsonl", _record(image="fake.png"))
    message = _load_error(path)
    assert "'image': cannot read" in message
    assert "fake.png" in message


def test_image_that_is_not_a_path_string_is_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "data.jsonl", _record(image=5))
    assert "'image' must be a file path" in _load_error(path)


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_with_json_tags(tmp_path):
    path = _write_csv(
        tmp_path / "data.csv",
        [{"id": "a", "prompt": "p", "tags": '[["nude", 0.9], ["1girl", 0.4]]', "rating": "X"}],
    )
    [example] = load_examples(path)
    assert example.tags == (("nude", 0.9), ("1girl", 0.4))
    assert example.label is Rating.X


def test_csv_with_plain_comma_separated_tags_gets_confidence_one(tmp_path):
    path = _write_csv(tmp_path / "data.csv", [{"id": "a", "tags": "nude, 1girl,solo"}])
    [example] = load_examples(path)
    assert example.tags == (("nude", 1.0), ("1girl", 1.0), ("solo", 1.0))


def test_csv_empty_cells_mean_no_tags_and_no_rating(tmp_path):
    path = _write_csv(tmp_path / "data.csv", [{"id": "a", "prompt": "p", "tags": "", "rating": ""}])
    [example] = load_examples(path)
    assert example.tags is None
    assert example.label is None


def test_csv_empty_json_list_tags_load_as_empty_tuple(tmp_path):
    path = _write_csv(tmp_path / "data.csv", [{"id": "a", "tags": "[]"}])
    assert load_examples(path)[0].tags == ()


def test_csv_numeric_rating_cell_is_a_level(tmp_path):
    path = _write_csv(tmp_path / "data.csv", [{"id": "a", "rating": "2"}])
    assert load_examples(path)[0].label is Rating.PG13


def test_csv_error_names_file_line_and_field(tmp_path):
    path = _write_csv(
        tmp_path / "data.csv", [{"id": "a", "rating": "PG"}, {"id": "b", "rating": "PG-14"}]
    )
    message = _load_error(path)
    assert f"{path}:3:" in message
    assert "'rating'" in message


def test_csv_tag_confidence_out_of_range_is_an_error(tmp_path):
    path = _write_csv(tmp_path / "data.csv", [{"id": "a", "tags": '[["nude", 2]]'}])
    message = _load_error(path)
    assert f"{path}:2:" in message
    assert "within 0-1" in message


def test_csv_without_id_column_is_an_error(tmp_path):
    path = _write_csv(tmp_path / "data.csv", [{"prompt": "p"}], fieldnames=["prompt"])
    message = _load_error(path)
    assert f"{path}:1:" in message
    assert "'id'" in message


def test_csv_extension_is_case_insensitive(tmp_path):
    path = _write_csv(tmp_path / "DATA.CSV", [{"id": "a"}])
    assert [e.id for e in load_examples(path)] == ["a"]


# -- rated and fingerprint ---------------------------------------------------------------------


def test_rated_drops_blocked_and_unlabelled_and_keeps_order():
    examples = [
        make_example(id="a", label="R"),
        make_example(id="b", label="Blocked"),
        make_example(id="c", label=None),
        make_example(id="d", label="PG"),
    ]
    assert [e.id for e in rated(examples)] == ["a", "d"]


def test_fingerprint_is_equal_for_equal_data_in_separate_objects():
    first = [make_example(id="a", label="R", tags=[("nude", 0.5)]), make_example(id="b")]
    second = [make_example(id="a", label="R", tags=[("nude", 0.5)]), make_example(id="b")]
    assert fingerprint(first) == fingerprint(second)
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint(first))


def test_fingerprint_changes_when_a_label_changes():
    base = [make_example(id="a", label="R"), make_example(id="b", label="PG")]
    relabelled = [make_example(id="a", label="X"), make_example(id="b", label="PG")]
    assert fingerprint(base) != fingerprint(relabelled)


def test_fingerprint_changes_when_a_label_is_blocked_or_removed():
    rated_version = fingerprint([make_example(id="a", label="XXX")])
    assert fingerprint([make_example(id="a", label="Blocked")]) != rated_version
    assert fingerprint([make_example(id="a", label=None)]) != rated_version


def test_fingerprint_changes_with_prompt_tags_and_order():
    a, b = make_example(id="a"), make_example(id="b")
    base = fingerprint([a, b])
    assert fingerprint([b, a]) != base
    assert fingerprint([make_example(id="a", prompt="a dog"), b]) != base
    assert fingerprint([make_example(id="a", tags=None), b]) != base
    assert fingerprint([make_example(id="a", tags=[("cat", 1.0)]), b]) != base


def test_fingerprint_changes_when_the_image_changes():
    black = make_example(id="a", image=Image.new("RGB", (2, 2), (0, 0, 0)))
    white = make_example(id="a", image=Image.new("RGB", (2, 2), (255, 255, 255)))
    assert fingerprint([black]) != fingerprint([white])


# -- the real corpus ---------------------------------------------------------------------------


def test_real_validation_file_loads_883_rated_examples():
    examples = load_examples(VAL_FILE)
    assert len(examples) == 883
    assert all(isinstance(e.rating, Rating) for e in examples)
    assert len(rated(examples)) == 883
    assert len({e.id for e in examples}) == 883
    assert all(e.tags is not None for e in examples)
