import json
import subprocess
import sys
from pathlib import Path

import pytest

from rating_models.cli import main
from tests.rating_models.bundles import lstm_bundle_config, toy_examples


def write_jsonl(path, examples):
    with path.open("w") as handle:
        for e in examples:
            handle.write(
                json.dumps(
                    {
                        "id": e.id,
                        "prompt": e.prompt,
                        "tags": [list(t) for t in e.tags],
                        "rating": e.label.label,
                        "source": "toy",
                    }
                )
                + "\n"
            )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = root / "config.json"
    config.write_text(json.dumps(lstm_bundle_config()))
    paths = {
        "train": write_jsonl(root / "train.jsonl", toy_examples()),
        "val": write_jsonl(root / "val.jsonl", toy_examples(1, "v")),
        "test": write_jsonl(root / "test.jsonl", toy_examples(1, "t")),
        "config": config,
        "bundle": root / "bundle",
    }
    assert (
        main(
            [
                "train",
                "--data",
                str(paths["train"]),
                "--val",
                str(paths["val"]),
                "--out",
                str(paths["bundle"]),
                "--config",
                str(config),
            ]
        )
        == 0
    )
    return paths


def test_evaluate_json_prints_one_object_with_every_model(files, capsys):
    assert main(["evaluate", str(files["bundle"]), str(files["test"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 8
    assert set(report["models"]) == {"tag_rules", "lstm", "lstm_tags", "voter", "mlp"}
    model = report["models"]["mlp"]
    for key in (
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion",
        "dcm_count",
        "dcm_rate",
        "severe_dcm_count",
        "severe_dcm_rate",
    ):
        assert key in model, key
    assert set(model["per_class"]["X"]) >= {"precision", "recall", "f1", "accuracy", "support"}
    assert len(model["confusion"]) == 5 and len(model["confusion"][0]) == 5
    assert "macro_f1" in report  # the suggested rating's figures sit at the top level


def test_evaluate_by_source_reports_each_source(files, capsys):
    assert (
        main(["evaluate", str(files["bundle"]), str(files["test"]), "--json", "--by", "source"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report["by_source"]) == {"toy"}
    assert report["by_source"]["toy"]["n"] == 8


def test_evaluate_without_json_prints_readable_tables(files, capsys):
    assert main(["evaluate", str(files["bundle"]), str(files["test"])]) == 0
    out = capsys.readouterr().out
    assert "macro-F1" in out and "severe DCM" in out and "confusion" in out


def test_predict_writes_one_json_line_per_item(files, tmp_path):
    out = tmp_path / "predictions.jsonl"
    assert main(["predict", str(files["bundle"]), str(files["test"]), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8
    assert lines[0]["suggested"] in {"PG", "PG13", "R", "X", "XXX"}
    assert set(lines[0]["experts"]) == {"tag_rules", "lstm", "lstm_tags"}


def test_evaluate_and_predict_take_the_runtime_of_the_transformer_experts(files, tmp_path):
    # This bundle has no transformer expert: the runtime is accepted and changes nothing.
    out = tmp_path / "predictions.jsonl"
    args = [str(files["bundle"]), str(files["test"]), "--runtime", "onnx-int8"]
    assert main(["evaluate", *args, "--json"]) == 0
    assert main(["predict", *args, "--out", str(out)]) == 0
    assert out.read_text().count("\n") == len(toy_examples(1))


def test_a_bad_data_file_is_a_clear_error_naming_file_and_line(files, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "x", "rating": "PG"}\n{"id": "b", "rating": "PG-14"}\n')
    assert main(["evaluate", str(files["bundle"]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2" in err and "rating" in err


def test_a_corrupt_bundle_is_a_clear_error(files, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    assert main(["evaluate", str(broken), str(files["test"])]) == 2
    assert "manifest.json is corrupt" in capsys.readouterr().err


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "rating-models"
    result = subprocess.run(
        [str(script), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train" in result.stdout and "evaluate" in result.stdout


def test_evaluate_markdown_prints_pipe_tables(files, capsys):
    assert main(["evaluate", str(files["bundle"]), str(files["test"]), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| model | n | accuracy | macro-F1 |" in out
    assert "| mlp | 8 |" in out


def test_evaluate_with_bootstrap_adds_intervals_to_every_model(files, capsys):
    args = ["evaluate", str(files["bundle"]), str(files["test"]), "--json", "--bootstrap", "50"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    for model in report["models"].values():
        assert len(model["intervals"]["macro_f1"]) == 2
    assert len(report["intervals"]["dcm_rate"]) == 2


# -- select, then train with its choice --------------------------------------------------------


def selection_config() -> dict:
    """Tag rules, a tiny LSTM and the n-gram baseline every selection compares against."""
    config = lstm_bundle_config()
    config["experts"] = [
        *config["experts"][:2],
        {"name": "ngram", "kind": "ngram", "config": {"min_df": 1}},
    ]
    return config


@pytest.fixture(scope="module")
def selected(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("select")
    config = root / "try.json"
    config.write_text(json.dumps(selection_config()))
    chosen, bundle = root / "chosen.json", root / "bundle"
    common = ["--data", str(files["train"]), "--val", str(files["val"])]
    assert (
        main(
            ["select", *common, "--out", str(chosen), "--config", str(config), "--bootstrap", "20"]
        )
        == 0
    )
    assert main(["train", *common, "--out", str(bundle), "--config", str(chosen)]) == 0
    return {"config": config, "chosen": chosen, "bundle": bundle}


def test_select_writes_a_configuration_with_its_log_and_the_outputs_beside_it(selected, files):
    from rating_models.stacking import OutOfFold

    record = json.loads(selected["chosen"].read_text())
    assert [e["name"] for e in record["experts"]] == ["tag_rules", "lstm", "ngram"]
    assert record["folds"] == 2
    assert {"baseline", "experts", "mlp", "voter", "suggested"} <= set(record["selection"])
    outputs = OutOfFold.load(selected["chosen"].with_suffix(".npz"))
    train_and_val = [*toy_examples(), *toy_examples(1, "v")]
    assert outputs.ids == [e.id for e in train_and_val]
    assert set(outputs.outputs) == {"tag_rules", "lstm", "ngram"}


def test_train_with_a_selected_configuration_keeps_its_log_and_reuses_its_outputs(selected):
    manifest = json.loads((selected["bundle"] / "manifest.json").read_text())
    record = json.loads(selected["chosen"].read_text())
    assert manifest["selection"] == record["selection"]
    assert manifest["stacking"]["reused_from_selection"] == ["lstm", "ngram", "tag_rules"]
    assert manifest["config"]["experts"] == record["experts"]
    assert manifest["suggested"] == record["suggested"]


def test_the_selection_outputs_are_not_reused_for_other_data(selected, files, capsys):
    from rating_models.cli import _selection_outputs
    from rating_models.config import BundleConfig

    config = BundleConfig.from_file(selected["chosen"])
    train, val = toy_examples(), toy_examples(1, "v")
    assert _selection_outputs(selected["chosen"], config, train, val) is not None
    assert _selection_outputs(selected["chosen"], config, train[1:], val) is None
    assert "do not match: computing them" in capsys.readouterr().err
    # Nor for other experts, nor without a selection.
    other = BundleConfig.from_file(selected["chosen"])
    other.experts[2]["config"]["C"] = 0.5
    assert _selection_outputs(selected["chosen"], other, train, val) is None
    assert (
        _selection_outputs(
            selected["config"], BundleConfig.from_file(selected["config"]), train, val
        )
        is None
    )


def test_train_with_select_chooses_settings_first_and_keeps_the_log(selected, files, tmp_path):
    bundle = tmp_path / "bundle"
    args = ["--data", str(files["train"]), "--val", str(files["val"]), "--out", str(bundle)]
    extra = ["--config", str(selected["config"]), "--select", "--bootstrap", "20"]
    assert main(["train", *args, *extra]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["selection"]["baseline"]["expert"] == "ngram"
    assert manifest["stacking"]["reused_from_selection"] == ["lstm", "ngram", "tag_rules"]
    ngram = next(e for e in manifest["config"]["experts"] if e["name"] == "ngram")
    assert ngram == next(e for e in manifest["selection"]["chosen_experts"] if e["name"] == "ngram")
