from moderation.review.decisions import label_create
from moderation.review.selectors import prediction_list_down_classed

from .conftest import make_item, make_prediction, make_version


def decided(moderator, version, *, label: int, voter: int, mlp: int, **item_fields):
    item = make_item(**item_fields)
    make_prediction(item, version, voter=voter, mlp=mlp)
    label_create(item=item, level=label, moderator=moderator)
    return item


def test_only_labels_above_the_voter_or_the_mlp_are_listed(alice, champion):
    down = decided(alice, champion, label=8, voter=2, mlp=8)
    decided(alice, champion, label=2, voter=2, mlp=2)  # agreed
    decided(alice, champion, label=1, voter=4, mlp=4)  # up-class: a nuisance, not listed
    decided(alice, champion, label=32, voter=1, mlp=1)  # Blocked is no rating
    assert [p.item for p in prediction_list_down_classed()] == [down]


def test_the_current_label_decides_not_a_superseded_one(alice, champion):
    item = decided(alice, champion, label=8, voter=2, mlp=2)
    label_create(item=item, level=2, moderator=alice)
    assert not prediction_list_down_classed().exists()


def test_rows_come_newest_current_label_first(alice, champion):
    first = decided(alice, champion, label=8, voter=2, mlp=2)
    second = decided(alice, champion, label=16, voter=2, mlp=2)
    label_create(item=first, level=4, moderator=alice)  # a correction, still above PG13
    rows = list(prediction_list_down_classed())
    assert [(p.item, p.label_level) for p in rows] == [(first, 4), (second, 16)]


def test_filters_by_rating_pair(alice, champion):
    x_as_pg13 = decided(alice, champion, label=8, voter=2, mlp=2)
    decided(alice, champion, label=16, voter=2, mlp=2)
    decided(alice, champion, label=8, voter=4, mlp=4)
    rows = prediction_list_down_classed(true_level=8, predicted_level=2)
    assert [p.item for p in rows] == [x_as_pg13]


def test_filters_by_which_model_down_classed(alice, champion):
    by_voter = decided(alice, champion, label=8, voter=2, mlp=8)
    by_mlp = decided(alice, champion, label=8, voter=8, mlp=2)
    assert [p.item for p in prediction_list_down_classed(model="voter")] == [by_voter]
    assert [p.item for p in prediction_list_down_classed(model="mlp")] == [by_mlp]


def test_filters_by_model_version(alice, champion):
    candidate = make_version("v2", status="candidate")
    item = decided(alice, champion, label=8, voter=8, mlp=8)
    make_prediction(item, candidate, voter=2, mlp=2)
    rows = prediction_list_down_classed()
    assert [p.model_version for p in rows] == [candidate]
    assert not prediction_list_down_classed(model_version="v1").exists()


def test_the_page_lists_rows_with_who_and_what(alice_client, alice, champion):
    item = decided(alice, champion, label=16, voter=2, mlp=4, external_id="sunset-7")
    page = alice_client.get("/review/disagreements/?model=mlp&true_level=16").content.decode()
    assert f"/review/items/{item.uid}/" in page
    assert "sunset-7" in page and "alice" in page and "v1" in page


def test_the_page_answers_the_filters_with_no_rows(alice_client, alice, champion):
    decided(alice, champion, label=16, voter=2, mlp=4)
    page = alice_client.get("/review/disagreements/?true_level=8").content.decode()
    assert "No down-class disagreements match these filters" in page


def test_the_page_reads_the_database_a_fixed_number_of_times(
    alice_client, alice, champion, django_assert_max_num_queries
):
    for _ in range(5):
        decided(alice, champion, label=16, voter=2, mlp=4)
    with django_assert_max_num_queries(10):
        response = alice_client.get("/review/disagreements/")
    assert len(response.context["page"].object_list) == 5


def test_the_list_is_paginated(alice_client, alice, champion):
    for _ in range(51):
        decided(alice, champion, label=16, voter=2, mlp=4)
    page = alice_client.get("/review/disagreements/?model=mlp").content.decode()
    assert "Page 1 of 2" in page
    assert "?model=mlp&amp;page=2" in page
