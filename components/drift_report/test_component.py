from pathlib import Path

import pytest

pytestmark = pytest.mark.component


def test_the_report_that_started_a_run_becomes_its_html_artifact(kfp_local: Path, tmp_path: Path) -> None:
    from textclf.components.drift_report.component import attach_drift_report

    source = tmp_path / "check-7.html"
    source.write_text("<html><body><h1>drift: retrain</h1></body></html>")

    task = attach_drift_report(drift_report=str(source))
    copied = Path(task.outputs["report"].path)
    assert copied.read_text() == source.read_text()
    assert task.outputs["report"].metadata["source"] == str(source)


def test_a_missing_report_fails_the_step_with_its_location(
    kfp_local: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from textclf.components.drift_report.component import attach_drift_report

    missing = tmp_path / "gone.html"
    with pytest.raises(RuntimeError, match=r"attach-drift-report.*FAILURE"):
        attach_drift_report(drift_report=str(missing))
    captured = capfd.readouterr()
    assert f"drift report {missing} cannot be read" in captured.out + captured.err
