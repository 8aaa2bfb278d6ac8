from kfp.dsl import HTML, Output

from textclf.components import textclf_component


@textclf_component
def attach_drift_report(drift_report: str, report: Output[HTML]) -> None:
    """Copy the drift report that started this run into the run, where the KFP UI shows it.

    Args:
        report: the drift report as this run's HTML artifact.
    """
    from pathlib import Path

    from textclf.steps.drift_report import copy_drift_report

    copy_drift_report(drift_report, Path(report.path))
    report.metadata["source"] = drift_report
