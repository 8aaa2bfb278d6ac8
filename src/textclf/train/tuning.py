"""Tune: an Optuna study (TPE, median pruning) whose objective is the one training function, run by one worker or
by several sharing the study (`textclf.train.parallel_study`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from textclf.data.preprocess import LabelMap, Truncation
from textclf.data.sources import LABEL
from textclf.train.trainer import TrainingJob, TrainingParams, loss_class_weights, selection_metric, train_classifier

if TYPE_CHECKING:
    import optuna

# The same model and data tuned twice share a study, so an interrupted study resumes where it stopped.
STUDY_NAME_FORMAT = "textclf-{fingerprint}-{finetune}-{base_model}"
LEARNING_RATE_RANGE = {"lora": (1e-4, 2e-3), "full": (1e-5, 1.5e-4)}


def search_space(base: TrainingParams) -> dict[str, optuna.distributions.BaseDistribution]:
    """What a study searches for a resolved fine-tuning mode; parameters that do not apply to it stay as given."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    low, high = LEARNING_RATE_RANGE[base.finetune]
    space = {
        "learning_rate": FloatDistribution(low, high, log=True),
        "batch_size": CategoricalDistribution([16, 32, 64]),
        "epochs": IntDistribution(1, max(1, base.epochs)),
        "weight_decay": FloatDistribution(0.0, 0.1),
        "warmup_ratio": FloatDistribution(0.0, 0.2),
    }
    if base.finetune == "lora":
        space |= {
            "lora_r": CategoricalDistribution([4, 8, 16, 32]),
            "lora_alpha": CategoricalDistribution([8, 16, 32, 64]),
            "lora_dropout": FloatDistribution(0.0, 0.2),
        }
    return space


def suggest_params(trial: optuna.Trial, base: TrainingParams) -> TrainingParams:
    """One point of the search space."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    values = {}
    for name, distribution in search_space(base).items():
        if isinstance(distribution, CategoricalDistribution):
            values[name] = trial.suggest_categorical(name, distribution.choices)
        elif isinstance(distribution, IntDistribution):
            values[name] = trial.suggest_int(name, distribution.low, distribution.high)
        else:
            values[name] = trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    return base.replace(**values)


def configured_point(base: TrainingParams) -> dict[str, float | int]:
    """The configured recipe as a point of the search space (the parameters that lie inside it): a fresh study's
    first trial, so tuning picks something else only when it did better on validation than the defaults."""
    from optuna.distributions import CategoricalDistribution

    point = {}
    for name, distribution in search_space(base).items():
        value = base.effective_learning_rate if name == "learning_rate" else getattr(base, name)
        if isinstance(distribution, CategoricalDistribution):
            inside = value in distribution.choices
        else:
            inside = distribution.low <= value <= distribution.high
        if inside:
            point[name] = value
    return point


def stratified_sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows with the class balance kept: trials see less data and finish sooner."""
    if max_rows <= 0 or len(frame) <= max_rows:
        return frame
    fraction = max_rows / len(frame)
    return frame.groupby(LABEL, group_keys=False).sample(frac=fraction, random_state=seed).reset_index(drop=True)


def _pruning_callback(trial: optuna.Trial):
    import optuna
    from transformers import TrainerCallback

    class ReportToTrial(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            # The metric the trainer picks its best epoch by: the study optimises the same one.
            trial.report(float(metrics[f"eval_{args.metric_for_best_model}"]), step=round(state.epoch or 0))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {round(state.epoch or 0)}")

    return ReportToTrial()


@dataclass
class TuneResult:
    best_params: TrainingParams
    best_value: float | None
    objective: str
    completed_trials: int
    pruned_trials: int
    study_name: str


def prepare_study(storage: str, study_name: str, base_params: TrainingParams, generation_size: int) -> optuna.Study:
    """Create (or load) the study every worker shares; a fresh study's first trial is the configured recipe
    (`configured_point`). Call once, before the workers start."""
    from textclf.train.parallel_study import open_study

    return open_study(storage, study_name, base_params.seed, generation_size, configured_point(base_params))


def run_worker(
    base_model: str,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    label_map: LabelMap,
    base_params: TrainingParams,
    trials: int,
    storage: str,
    study_name: str,
    work_dir: Path,
    max_length: int,
    truncation: Truncation = "head",
    show_progress: bool = True,
) -> int:
    """One worker of a prepared study: train trials (each a nested MLflow run) until the study holds `trials`
    finished ones, counting the other workers' (`textclf.train.parallel_study`). Returns the trials it ran.
    `base_params` must be resolved (`for_model`, `for_data`) as the study was prepared with."""
    import mlflow
    import optuna

    from textclf.registry.tracking import nested_run
    from textclf.train.parallel_study import open_study, run_trials

    study = open_study(storage, study_name, base_params.seed)
    objective_metric = selection_metric(loss_class_weights(train, label_map, base_params.class_weighting))

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, base_params)
        with nested_run(f"trial-{trial.number}"):
            mlflow.log_params({**params.to_dict(), "trial": trial.number, "study": study_name})
            try:
                result = train_classifier(
                    TrainingJob(base_model, train, validation, label_map, params, max_length, truncation),
                    work_dir / f"trial-{trial.number}",
                    callbacks=[_pruning_callback(trial)],
                    show_progress=show_progress,
                )
            except optuna.TrialPruned:
                mlflow.set_tag("optuna_state", "pruned")
                raise
            score = float(result.best_validation[objective_metric])
            mlflow.log_metric(f"best_validation_{objective_metric}", score)
            mlflow.set_tag("optuna_state", "complete")
            return score

    return run_trials(study, objective, trials)


def summarize_study(
    study: optuna.Study, base_params: TrainingParams, train: pd.DataFrame, label_map: LabelMap
) -> TuneResult:
    """The best trial's recipe (highest score, lowest number on a tie: the same whichever worker finished first),
    or `base_params` when no trial completed."""
    import optuna

    from textclf.train.parallel_study import best_trial

    objective_metric = selection_metric(loss_class_weights(train, label_map, base_params.class_weighting))
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
    best = best_trial(study)
    if best is None:
        return TuneResult(base_params, None, objective_metric, 0, pruned, study.study_name)
    return TuneResult(
        base_params.replace(**best.params), float(best.value), objective_metric, complete, pruned, study.study_name
    )


def run_study(
    base_model: str,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    label_map: LabelMap,
    base_params: TrainingParams,
    trials: int,
    storage: str,
    study_name: str,
    work_dir: Path,
    max_length: int,
    truncation: Truncation = "head",
    show_progress: bool = True,
) -> tuple[TuneResult, optuna.Study]:
    """A whole study in this process: prepare it, run trials until it holds `trials` finished ones (resuming an
    interrupted study), and pick the best."""
    base_params = base_params.for_model(base_model).for_data(len(train))
    study = prepare_study(storage, study_name, base_params, generation_size=1)
    run_worker(
        base_model,
        train,
        validation,
        label_map,
        base_params,
        trials,
        storage,
        study_name,
        work_dir,
        max_length,
        truncation,
        show_progress,
    )
    return summarize_study(study, base_params, train, label_map), study


def write_study_plots(study: optuna.Study, history_path: Path, importance_path: Path) -> None:
    """Optimization history and parameter importance as self-contained HTML pages."""
    import optuna

    completed = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if completed:
        optuna.visualization.plot_optimization_history(study).write_html(history_path, include_plotlyjs=True)
    else:
        history_path.write_text("<html><body><p>No completed trial yet.</p></body></html>")
    varied = {name for trial in completed for name in trial.params} if len(completed) >= 2 else set()
    if varied:
        optuna.visualization.plot_param_importances(study).write_html(importance_path, include_plotlyjs=True)
    else:
        importance_path.write_text(
            "<html><body><p>Parameter importance needs at least two completed trials.</p></body></html>"
        )


class TuningConfig(BaseModel):
    """The Optuna study that tunes the training recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trials: int = Field(2, ge=0, description="Optuna trials; 0 skips tuning")
    max_train_rows: int = Field(2000, ge=0, description="rows each trial trains on (0 = all)")
    parallelism: int = Field(
        1,
        ge=1,
        description="trials run at once, one worker each (a pod in a cluster, a process locally) on one shared "
        "study; the outcome does not depend on which finishes first",
    )
    optuna_storage: str = Field(
        "",
        description="Optuna RDB URL every worker reaches (PostgreSQL in a cluster); empty = sqlite file in the "
        "working directory",
    )
