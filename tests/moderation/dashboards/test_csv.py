import csv
import io

import pytest

from .conftest import make_evaluation, make_item, make_label, make_prediction


def rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.fixture
def evaluated(champion, alice):
    # true PG, PG13, X, XXX; suggested PG, PG13, PG, XXX: one severe DCM of two explicit items
    make_evaluation(
        champion,
        [0, 1, 3, 4],
        {
            "suggested": [0, 1, 0, 4],
            "voter": [0, 0, 0, 4],
            "mlp": [0, 1, 3, 4],
            "lstm": [0, 1, 3, 4],
        },
    )
    item = make_item()
    make_prediction(item, champion, suggested=1)
    make_label(item, 8, alice)
    return champion


def test_the_metrics_csv_has_every_model_on_test_and_live(admin_client, evaluated):
    data = rows(admin_client.get("/dashboards/?format=csv"))
    by_key = {(r["version"], r["data"], r["model"]): r for r in data}
    assert set(by_key) >= {
        ("v1", "test", "suggested"),
        ("v1", "test", "voter"),
        ("v1", "test", "mlp"),
        ("v1", "test", "lstm"),
        ("v1", "live", "suggested"),
    }
    suggested = by_key["v1", "test", "suggested"]
    assert suggested["status"] == "champion"
    assert float(suggested["accuracy"]) == 0.75
    assert int(suggested["severe_dcm_count"]) == 1
    assert float(suggested["severe_dcm_rate"]) == 0.5
    assert float(by_key["v1", "test", "voter"]["dcm_rate"]) == 0.5
    assert float(by_key["v1", "live", "suggested"]["severe_dcm_rate"]) == 1.0


def test_the_trend_csv_has_a_row_per_evaluation_and_output(admin_client, evaluated):
    data = rows(admin_client.get("/dashboards/trend.csv"))
    assert [r["model"] for r in data] == ["suggested", "voter", "mlp", "lstm"]
    assert float(data[1]["dcm_rate"]) == 0.5  # the voter's
    assert float(data[3]["dcm_rate"]) == 0.0  # the expert's
    # The trend charts draw the same series as the CSV, the expert's included.
    page = admin_client.get("/dashboards/").text
    assert "4 series over 1 points: Suggested: 25%; Voter: 50%; MLP: 0%; lstm: 0%" in page
    assert float(data[0]["dcm_rate"]) == 0.25
    assert float(data[0]["severe_dcm_rate"]) == 0.5


def test_the_confusion_csv_is_the_matrix_rows_true(admin_client, evaluated):
    response = admin_client.get("/dashboards/versions/v1/matrix.csv?model=suggested&data=test")
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0] == ["true \\ predicted", "PG", "PG13", "R", "X", "XXX"]
    assert table[4] == ["X", "1", "0", "0", "0", "0"]
    dcm = admin_client.get("/dashboards/versions/v1/matrix.csv?model=voter&matrix=dcm_matrix")
    table = list(csv.reader(io.StringIO(dcm.content.decode())))
    assert table[2] == ["PG13", "1", "0", "0", "0", "0"]
    assert table[1][1] == "0"  # the diagonal is not a DCM


def test_the_confusion_csv_of_a_missing_model_is_not_found(admin_client, evaluated):
    assert admin_client.get("/dashboards/versions/v1/matrix.csv?model=nope").status_code == 404


def test_the_health_csvs_hold_the_counts(admin_client, evaluated):
    days = rows(admin_client.get("/dashboards/health/days.csv?days=7"))
    assert len(days) == 7
    assert sum(int(r["labels"]) for r in days) == 1
    moderators = rows(admin_client.get("/dashboards/health/moderators.csv"))
    assert [(r["moderator"], r["labels"]) for r in moderators] == [("alice", "1")]


def test_beat_keeps_the_champions_live_figures_as_the_live_trend(admin_client, evaluated):
    from moderation.training.models import Evaluation
    from moderation.training.tasks import record_live_figures

    evaluation = Evaluation.objects.get(pk=record_live_figures())

    assert (evaluation.data, evaluation.n, evaluation.model_version) == ("live", 1, evaluated)
    assert evaluation.report["severe_dcm_count"] == 1  # labelled X, rated PG
    assert "intervals" in evaluation.report  # with bootstrap intervals, as the gate's
    data = rows(admin_client.get("/dashboards/trend.csv"))
    assert [(r["data"], r["model"]) for r in data if r["data"] == "live"][:3] == [
        ("live", "suggested"),
        ("live", "voter"),
        ("live", "mlp"),
    ]
    page = admin_client.get("/dashboards/").text
    live_card = page[page.index('id="trend-live"') :]
    assert "DCM trend on live labels" in live_card and "<svg" in live_card
    assert "No live figures kept yet" not in page


def test_no_live_figures_are_kept_without_a_moderators_label(champion):
    from moderation.training.tasks import record_live_figures

    make_prediction(make_item(), champion, suggested=1)
    assert record_live_figures() is None
