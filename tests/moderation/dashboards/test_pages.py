from django.db import connection
from django.test.utils import CaptureQueriesContext

from moderation.inference.models import ModelVersion
from tests.moderation.people import make_user

from .conftest import make_evaluation, make_item, make_label, make_prediction


def populate(count: int, champion, candidate, moderator) -> None:
    for i in range(count):
        item = make_item()
        make_prediction(item, champion, suggested=[1, 2, 4, 8, 16][i % 5])
        make_prediction(item, candidate, suggested=1, voter=2)
        make_label(item, [1, 8, 4, 16, 2][i % 5], moderator)


def overview_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/dashboards/").status_code == 200
    return len(queries)


def test_the_overview_query_count_does_not_grow_with_the_items(admin_client, champion, alice):
    candidate = ModelVersion.objects.create(version="v2", path="/b/v2", status="candidate")
    for version in (champion, candidate):
        make_evaluation(version, [0, 3], {"suggested": [0, 0], "voter": [0, 3], "mlp": [0, 0]})
    populate(5, champion, candidate, alice)
    few = overview_queries(admin_client)
    populate(45, champion, candidate, alice)
    assert overview_queries(admin_client) == few


def test_the_overview_lists_the_champion_before_the_candidate(admin_client, champion):
    ModelVersion.objects.create(version="v0", path="/b/v0", status="retired")
    ModelVersion.objects.create(version="v2", path="/b/v2", status="candidate")
    make_evaluation(champion, [3], {"suggested": [0], "voter": [3], "mlp": [0]})
    html = admin_client.get("/dashboards/").content.decode()
    assert html.index('data-version="v1"') < html.index('data-version="v2"')
    assert html.index('data-version="v2"') < html.index('data-version="v0"')
    assert "<svg" in html and "Severe DCM rate" in html


def test_the_overview_links_severe_items_to_their_history(admin_client, champion, alice):
    item = make_item(external_id="slipped-1")
    make_prediction(item, champion, suggested=2)
    make_label(item, 16, alice)
    html = admin_client.get("/dashboards/").content.decode()
    assert f'href="/review/items/{item.uid}/"' in html


def test_the_version_page_emphasises_the_down_class_cells(admin_client, champion):
    make_evaluation(champion, [3, 2], {"suggested": [0, 4], "voter": [3, 2], "mlp": [0, 4]})
    html = admin_client.get("/dashboards/versions/v1/?model=suggested").content.decode()
    assert html.count("cell cell-dcm cell-severe") == 2 * 4  # 4 severe cells per matrix
    assert 'title="true X, predicted PG: 1 (down-class, severe)"' in html
    assert html.count("cell-up") >= 10


def test_the_version_page_shows_a_chosen_expert_on_live_labels(admin_client, champion, alice):
    item = make_item()
    make_prediction(item, champion, suggested=8, experts={"tag_rules": 1, "lstm": 8})
    make_label(item, 8, alice)
    response = admin_client.get("/dashboards/versions/v1/?model=tag_rules&data=live")
    assert response.context["figures"]["severe_dcm_count"] == 1
    assert response.context["model"] == "tag_rules"


def test_a_moderator_name_with_html_is_escaped_in_charts_and_tables(admin_client, db):
    hacker = make_user("<script>alert(1)</script>", "moderators")
    make_label(make_item(), 1, hacker)
    html = admin_client.get("/dashboards/health/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    svgs = html.split("<svg")[1:]
    assert any("&lt;script&gt;" in svg.split("</svg>")[0] for svg in svgs)
