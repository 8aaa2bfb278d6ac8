from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.component


def test_ingest_runs_under_kfp_local(
    kfp_local: Path, reviews_csv: Path, local_tracking_uri: str, tmp_path: Path
) -> None:
    import mlflow

    feedback = tmp_path / "feedback.csv"
    pd.DataFrame({"text": ["lol gr8 #winning", "ugh mondays"], "label": ["positive", "negative"]}).to_csv(
        feedback, index=False
    )

    from textclf.components.ingest.component import ingest

    tracking_uri = local_tracking_uri
    task = ingest(
        data=str(reviews_csv),
        dataset={"text_column": "text", "label_column": "label", "validation_fraction": 0.2, "test_fraction": 0.2},
        seed=1,
        tracking_uri=tracking_uri,
        experiment_name="component-test",
        run_name="ingest-test",
        extra_train_data=str(feedback),
        trigger="textclf/1/episode-7",
    )
    sizes = task.outputs["split_sizes"]
    assert sizes == {"train": 44, "validation": 14, "test": 14}
    assert "ugh mondays" in set(pd.read_parquet(task.outputs["train_split"].path)["text"])
    assert len(pd.read_parquet(task.outputs["test_split"].path)) == 14
    assert "# Data report" in Path(task.outputs["data_report"].path).read_text()
    run = mlflow.get_run(task.outputs["mlflow_run_id"])
    assert run.data.tags["data_fingerprint"] == task.outputs["data_fingerprint"]
    assert run.info.run_name == "ingest-test"
    assert run.data.tags["textclf.trigger"] == "textclf/1/episode-7"
    assert run.data.params["extra_train_data"] == str(feedback)
