"""Train: fine-tune an encoder with LoRA or fully, with early stopping, checkpoints and MLflow logging."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from textclf.data.balance import SKEWED_CLASS_RATIO, ClassBalance, ClassWeighting
from textclf.data.preprocess import INPUT_IDS, LABEL_ID, LENGTH, LabelMap, Truncation
from textclf.data.sources import LABEL, TEXT
from textclf.metrics import classification_metrics
from textclf.runtime.cpu import configure_torch_threads, cpu_supports_bf16
from textclf.serve.classifier import predict_probabilities
from textclf.train.modeling import (
    FULL_FINETUNE_MAX_PARAMETERS,
    FineTuneMode,
    LoraSettings,
    build_classifier,
    load_tokenizer,
    merge_for_serving,
    resolve_finetune,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

DEFAULT_LEARNING_RATE: dict[str, float] = {"lora": 5e-4, "full": 5e-5}
# `epochs=0` (auto): this many epochs, or more on small data so training takes at least AUTO_EPOCHS_MIN_STEPS
# optimizer steps; 1,800 rows in batches of 32 run only 170 steps in 3 epochs and stop short of what they can learn.
AUTO_EPOCHS = 3
AUTO_EPOCHS_MAX = 10
AUTO_EPOCHS_MIN_STEPS = 500


def auto_epochs(train_rows: int, batch_size: int) -> int:
    """The epochs `epochs=0` runs on `train_rows` rows: AUTO_EPOCHS, or enough for AUTO_EPOCHS_MIN_STEPS optimizer
    steps, at most AUTO_EPOCHS_MAX."""
    steps_per_epoch = max(1, math.ceil(train_rows / batch_size))
    return min(AUTO_EPOCHS_MAX, max(AUTO_EPOCHS, math.ceil(AUTO_EPOCHS_MIN_STEPS / steps_per_epoch)))


def auto_patience(epochs: int) -> int:
    """The patience `early_stopping_patience=0` uses: one epoch in runs of up to AUTO_EPOCHS, two in longer ones,
    whose small validation splits move by a few rows between epochs."""
    return 1 if epochs <= AUTO_EPOCHS else 2


class TrainingRecipe(BaseModel):
    """How a model is fine-tuned, with its defaults: the one place they are stated (the pipeline's `training`
    parameter group). `learning_rate=0` picks the fine-tuning mode's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    finetune: FineTuneMode = Field(
        "auto",
        description="full, LoRA adapters (merged after), or auto = full for encoders up to "
        f"{FULL_FINETUNE_MAX_PARAMETERS // 1_000_000}M parameters, LoRA beyond",
    )
    learning_rate: float = Field(0.0, ge=0, description="peak learning rate; 0 = 5e-4 for LoRA, 5e-5 for full")
    batch_size: int = Field(32, ge=1, description="training batch size")
    epochs: int = Field(
        0,
        ge=0,
        description=f"maximum epochs (early stopping may end sooner); 0 = auto: {AUTO_EPOCHS}, or more on small "
        f"data so training takes at least {AUTO_EPOCHS_MIN_STEPS} optimizer steps (at most {AUTO_EPOCHS_MAX})",
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="share of steps with linear warm-up")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    freeze_word_embeddings: bool = Field(True, description="keep the word-embedding matrix frozen (full mode)")
    early_stopping_patience: int = Field(
        0,
        ge=0,
        description=f"epochs without improvement before stopping; 0 = auto: 1 in runs of up to {AUTO_EPOCHS} "
        "epochs, 2 in longer ones",
    )
    class_weighting: ClassWeighting = Field(
        "auto",
        description="class-weighted loss: auto = balanced weights when the largest class has "
        f"{SKEWED_CLASS_RATIO:g}x the rows of the smallest, balanced = always, none = never",
    )
    calibrate: bool = Field(
        True, description="fit a temperature on the validation split so scores match accuracy; serving applies it"
    )


class TrainingParams(TrainingRecipe):
    """A recipe and the run's seed: what one training run needs. The seed is the whole run's (splitting,
    initialisation, data order, tuning), so the pipeline takes it once, beside the recipe."""

    seed: int = Field(42, description="seed for splitting, initialisation, data order and tuning")

    @classmethod
    def of(cls, recipe: Mapping[str, Any], seed: int) -> TrainingParams:
        """`recipe` (a pipeline's `training` group: `TrainingRecipe`'s fields) with `seed`, validated."""
        return cls.model_validate({**recipe, "seed": seed})

    @property
    def recipe(self) -> dict[str, Any]:
        """The recipe alone (no seed), as the pipeline's `training` group carries it."""
        return self.model_dump(exclude={"seed"})

    @property
    def effective_learning_rate(self) -> float:
        if self.finetune == "auto":
            raise ValueError("finetune=auto has no learning rate until resolved for a base model (for_model)")
        return self.learning_rate or DEFAULT_LEARNING_RATE[self.finetune]

    def for_model(self, base_model: str) -> TrainingParams:
        """These parameters with `finetune` decided for `base_model` (`auto` resolved)."""
        return self.replace(finetune=resolve_finetune(self.finetune, base_model))

    def for_data(self, train_rows: int) -> TrainingParams:
        """These parameters with `epochs` and `early_stopping_patience` decided for `train_rows` training rows
        (`0` = auto resolved); set values stay as they are."""
        epochs = self.epochs or auto_epochs(train_rows, self.batch_size)
        patience = self.early_stopping_patience or auto_patience(epochs)
        return self.replace(epochs=epochs, early_stopping_patience=patience)

    @property
    def lora(self) -> LoraSettings:
        return LoraSettings(r=self.lora_r, alpha=self.lora_alpha, dropout=self.lora_dropout)

    def replace(self, **values: Any) -> TrainingParams:
        """A copy with `values` changed, validated like the original."""
        return type(self).model_validate({**self.model_dump(), **values})

    def to_dict(self) -> dict[str, Any]:
        return {**self.model_dump(), "learning_rate": self.effective_learning_rate}


@dataclass
class TrainResult:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    history: list[dict[str, float]] = field(default_factory=list)
    best_validation: dict[str, Any] = field(default_factory=dict)
    validation_probabilities: np.ndarray | None = None
    train_seconds: float = 0.0
    train_samples_per_second: float = 0.0
    bf16: bool = False
    class_weights: dict[str, float] | None = None


def selection_metric(class_weights: Mapping[str, float] | None) -> str:
    """Macro F1 when the loss is class-weighted (skewed classes), accuracy otherwise."""
    return "accuracy" if class_weights is None else "macro_f1"


def loss_class_weights(train: pd.DataFrame, label_map: LabelMap, weighting: ClassWeighting) -> dict[str, float] | None:
    """The per-class loss weights training on `train` uses (in label-id order), or None for the plain loss."""
    return ClassBalance.of(train[LABEL], label_map.labels).loss_weights(weighting)


def _as_hf_dataset(frame: pd.DataFrame):
    import datasets

    return datasets.Dataset.from_dict(
        {
            INPUT_IDS: frame[INPUT_IDS].tolist(),
            "labels": frame[LABEL_ID].astype(int).tolist(),
            LENGTH: frame[LENGTH].astype(int).tolist(),
        }
    )


def training_throughput(trainer, batch_size: int, train_seconds: float) -> float:
    """Training samples per second of pure training: per-epoch evaluation time is taken out, and samples
    are the steps actually run (the trainer's own figure assumes every planned epoch ran)."""
    eval_seconds = sum(entry.get("eval_runtime", 0.0) for entry in trainer.state.log_history)
    return trainer.state.global_step * batch_size / max(train_seconds - eval_seconds, 1e-9)


def _epoch_logger():
    from transformers import TrainerCallback

    class MlflowEpochLogger(TrainerCallback):
        """Per-epoch validation metrics into the active MLflow run (the trial's, when tuning)."""

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            import mlflow

            if mlflow.active_run() is None or not metrics:
                return
            numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            mlflow.log_metrics(numeric, step=round(state.epoch or 0))

    return MlflowEpochLogger()


def _weighted_cross_entropy(weights: Sequence[float]):
    """The trainer's loss with a weight per class (`compute_loss_func`): a per-batch weighted mean."""
    import torch

    weight = torch.tensor(list(weights), dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight.to(logits.device))

    return loss


def _observed(collate: Callable, observer: Callable[[list[dict[str, Any]]], None] | None) -> Callable:
    if observer is None:
        return collate

    def collate_and_tell(features: list[dict[str, Any]]):
        observer(features)
        return collate(features)

    return collate_and_tell


@dataclass(frozen=True)
class TrainingJob:
    """What one fine-tuning run trains and how: the same for every trainer (`train_classifier` in this process,
    `train_distributed` under torchrun, `train_on_trainjob` on a cluster)."""

    base_model: str
    train: pd.DataFrame
    validation: pd.DataFrame
    label_map: LabelMap
    params: TrainingParams
    max_length: int
    truncation: Truncation = "head"

    def with_params(self, params: TrainingParams) -> TrainingJob:
        return replace(self, params=params)


JobRunner = Callable[[TrainingJob, Path], "TrainResult"]
"""Runs a `TrainingJob` with a work directory for its checkpoints: what the train step is handed."""


def train_classifier(
    job: TrainingJob,
    work_dir: Path,
    callbacks: Sequence[TrainerCallback] = (),
    show_progress: bool = True,
    batch_observer: Callable[[list[dict[str, Any]]], None] | None = None,
) -> TrainResult:
    """Fine-tune on prepared (tokenized) splits; returns the best epoch's model with LoRA merged.
    `batch_observer` sees the examples of every batch this process collates (training and evaluation alike):
    under torchrun, each rank's share of the data.

    With skewed classes (`params.class_weighting`) the loss weighs each class by its rarity and the best epoch
    is the one with the best macro F1, so neither training nor checkpoint selection trades a rare class for
    accuracy on the common ones; otherwise the best epoch is the most accurate."""
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    base_model, train, validation, label_map = job.base_model, job.train, job.validation, job.label_map
    params = job.params.for_model(base_model).for_data(len(train))
    class_weights = loss_class_weights(train, label_map, params.class_weighting)
    configure_torch_threads()
    bf16 = cpu_supports_bf16()
    tokenizer = load_tokenizer(base_model)
    model = build_classifier(
        base_model,
        label_map,
        params.finetune,
        params.lora,
        params.freeze_word_embeddings,
        params.seed,
    )

    def compute_metrics(prediction) -> dict[str, float]:
        import torch

        logits = torch.as_tensor(prediction.predictions).float()
        probabilities = torch.softmax(logits, dim=-1).numpy()
        metrics = classification_metrics(prediction.label_ids, probabilities, label_map.labels)
        return {name: metrics[name] for name in ("accuracy", "macro_f1", "ece")}

    arguments = TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=selection_metric(class_weights),
        greater_is_better=True,
        learning_rate=params.effective_learning_rate,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=128,
        num_train_epochs=params.epochs,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,
        lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length",
        length_column_name=LENGTH,
        bf16=bf16,
        use_cpu=True,
        seed=params.seed,
        data_seed=params.seed,
        logging_strategy="epoch",
        report_to="none",
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=_as_hf_dataset(train),
        eval_dataset=_as_hf_dataset(validation),
        data_collator=_observed(DataCollatorWithPadding(tokenizer), batch_observer),
        compute_metrics=compute_metrics,
        compute_loss_func=None if class_weights is None else _weighted_cross_entropy(class_weights.values()),
        callbacks=[EarlyStoppingCallback(params.early_stopping_patience), _epoch_logger(), *callbacks],
    )
    if not show_progress:
        # Without its progress bar the Trainer prints every log dict to stdout (transformers' `PrinterCallback`,
        # added in `Trainer.__init__`); the epochs' metrics already go to MLflow and the history.
        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    history = [
        {key.removeprefix("eval_"): value for key, value in entry.items() if key.startswith("eval_") or key == "epoch"}
        for entry in trainer.state.log_history
        if "eval_accuracy" in entry
    ]
    model = merge_for_serving(trainer.model)
    # Predict in the original row order (the trainer's evaluation loop groups rows by length).
    probabilities = predict_probabilities(
        model, tokenizer, validation[TEXT].tolist(), job.max_length, bf16=bf16, truncation=job.truncation
    )
    best_validation = classification_metrics(validation[LABEL_ID].to_numpy(), probabilities, label_map.labels)
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        history=history,
        best_validation=best_validation,
        validation_probabilities=probabilities,
        train_seconds=train_seconds,
        train_samples_per_second=training_throughput(trainer, params.batch_size, train_seconds),
        bf16=bf16,
        class_weights=class_weights,
    )
