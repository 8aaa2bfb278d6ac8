"""What the quality benchmarks share: the shared data's location, and one textclf training run (the pipeline's
own functions, `TrainingParams` defaults unless overridden) scored on a test set next to TF-IDF + LR."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tables import REPO

SHARED_DATA = REPO.parent / "shared" / "data"
SEED = 42


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` options as a mapping `TrainingParams` validates."""
    return dict(item.split("=", 1) for item in items)


class PeakMemory:
    """The process's largest resident set size while the block runs, sampled every `interval` seconds (the
    kernel's own high-water mark covers the whole process, not one variant of a benchmark)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        import psutil

        process = psutil.Process()

        def sample() -> None:
            while not self._stop.is_set():
                self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


ENCODING_SETTINGS = ("max_length", "truncation", "predict_max_length")


def _encoding_and_params(overrides: dict[str, str]):
    """The pipeline's encoder settings (`ENCODING_SETTINGS`, each the pipeline's unless overridden) and the
    `TrainingParams` overrides set."""
    from textclf.train.modeling import EncoderConfig
    from textclf.train.trainer import TrainingParams

    overrides = dict(overrides)
    encoding = {name: overrides.pop(name, None) for name in ENCODING_SETTINGS}
    config = EncoderConfig(**{name: value for name, value in encoding.items() if value is not None})
    return config, TrainingParams.model_validate(overrides)


def _prepare(frames: dict[str, pd.DataFrame], max_length: int, truncation: str, label_map=None):
    from textclf.data.cleaning import CleaningConfig
    from textclf.data.preprocess import LabelMap, prepare_split
    from textclf.data.sources import LABEL
    from textclf.train.modeling import PACKAGED_MINILM, load_tokenizer

    label_map = label_map or LabelMap.from_labels(frames["train"][LABEL])
    tokenizer = load_tokenizer(PACKAGED_MINILM)
    prepared = {
        name: prepare_split(frame, CleaningConfig(), tokenizer, label_map, max_length, truncation).frame
        for name, frame in frames.items()
    }
    return prepared, label_map


class CalibratedModel:
    """A packaged MiniLM fine-tuned on raw (text, label) splits exactly as the pipeline does, with the temperature
    the train step fits on the validation split at the prediction length."""

    def __init__(self, train: pd.DataFrame, validation: pd.DataFrame, overrides: dict[str, str], callbacks=()):
        from textclf.data.preprocess import LABEL_ID
        from textclf.evaluate.calibration import apply_temperature, fit_temperature
        from textclf.metrics import expected_calibration_error
        from textclf.train.modeling import PACKAGED_MINILM
        from textclf.train.trainer import TrainingJob, train_classifier

        self.encoding, params = _encoding_and_params(overrides)
        prepared, self.label_map = _prepare({"train": train, "validation": validation}, *self._cut)
        self.params = params.for_model(PACKAGED_MINILM).for_data(len(prepared["train"]))
        self.train_rows = len(prepared["train"])
        with tempfile.TemporaryDirectory() as work, PeakMemory() as memory:
            job = TrainingJob(
                PACKAGED_MINILM, prepared["train"], prepared["validation"], self.label_map, self.params, *self._cut
            )
            self.trained = train_classifier(job, Path(work), callbacks=callbacks, show_progress=False)
        self.peak_rss_mib = memory.peak_mib
        self.predict_length = self.length_for(self.encoding.predict_max_length)
        self.validation = prepared["validation"]
        self.validation_probabilities = self.probabilities(self.validation, temperature=1.0)
        validation_ids = self.validation[LABEL_ID].to_numpy()
        self.temperature = (
            fit_temperature(self.validation_probabilities, validation_ids) if self.params.calibrate else 1.0
        )
        calibrated = apply_temperature(self.validation_probabilities, self.temperature)
        self.validation_ece = expected_calibration_error(calibrated, validation_ids)
        # What the model directory's reference sample holds: each validation text's served score and correctness.
        self.validation_scores = (calibrated.max(axis=1), calibrated.argmax(axis=1) == validation_ids)

    def length_for(self, requested: int) -> int:
        """The tokens per text a prediction at `requested` reads, capped as the pipeline caps it."""
        from textclf.train.modeling import prediction_max_length

        return prediction_max_length(self.trained.model, self.trained.tokenizer, self.encoding.max_length, requested)

    @property
    def _cut(self) -> tuple[int, str]:
        return self.encoding.max_length, self.encoding.truncation

    def prepared(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Raw (text, label) rows cleaned, tokenized and label-encoded as training's were."""
        return _prepare({"frame": frame}, *self._cut, self.label_map)[0]["frame"]

    def embeddings(self, prepared: pd.DataFrame, max_tokens: int):
        """Sentence embeddings of prepared rows from their first `max_tokens` tokens, as the monitor embeds texts."""
        from textclf.data.sources import TEXT
        from textclf.serve.backends import TorchBackend
        from textclf.serve.classifier import forward_texts

        backend = TorchBackend(self.trained.model)
        texts = prepared[TEXT].tolist()
        return forward_texts(backend, self.trained.tokenizer, texts, max_tokens, embeddings=True).embeddings

    def probabilities(self, prepared: pd.DataFrame, temperature: float | None = None, length: int = 0):
        """Class probabilities of prepared rows at the prediction length (or `length` tokens), calibrated with the
        fitted temperature unless one is given."""
        from textclf.data.sources import TEXT
        from textclf.serve.classifier import predict_probabilities

        return predict_probabilities(
            self.trained.model,
            self.trained.tokenizer,
            prepared[TEXT].tolist(),
            length or self.predict_length,
            truncation=self.encoding.truncation,
            temperature=self.temperature if temperature is None else temperature,
        )


def train_and_score(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    overrides: dict[str, str],
    callbacks: Sequence = (),
    also_predict_at: Sequence[int] = (),
) -> dict:
    """Fine-tune the packaged MiniLM on raw (text, label) splits exactly as the pipeline does (`CalibratedModel`)
    and score it on `test`: accuracy, macro F1, ECE, per class, training time, epochs and peak memory. `overrides`
    may set `TrainingParams` fields and the pipeline's `ENCODING_SETTINGS`; the rest are the pipeline's defaults.
    Test rows are predicted at the prediction length, as the evaluate step does; `also_predict_at` scores the same
    model at other prediction lengths too (each capped like the pipeline's), so lengths compare without the spread
    between trainings."""
    import numpy as np

    from textclf.data.preprocess import LABEL_ID
    from textclf.data.sources import TEXT
    from textclf.metrics import classification_metrics
    from textclf.serve.backends import OnnxBackend, export_onnx
    from textclf.serve.classifier import forward_texts

    model = CalibratedModel(train, validation, overrides, callbacks)
    trained, test_rows = model.trained, model.prepared(test)
    probabilities = model.probabilities(test_rows)
    true_ids = np.asarray(test_rows[LABEL_ID])
    accuracy_by_predict_length = {}
    for requested in also_predict_at:
        length = model.length_for(requested)
        other = model.probabilities(test_rows, temperature=1.0, length=length)
        accuracy_by_predict_length[length] = float((other.argmax(axis=1) == true_ids).mean())
    metrics = classification_metrics(true_ids, probabilities, model.label_map.labels)
    backends = {"torch": {"accuracy": metrics["accuracy"]}}
    with tempfile.TemporaryDirectory() as exported:
        trained.model.save_pretrained(exported)
        for name, path in export_onnx(Path(exported)).items():
            onnx_probabilities = forward_texts(
                OnnxBackend(name, path),
                trained.tokenizer,
                test_rows[TEXT].tolist(),
                model.predict_length,
                truncation=model.encoding.truncation,
                temperature=model.temperature,
            ).probabilities
            backends[name] = {
                "accuracy": float((onnx_probabilities.argmax(axis=1) == true_ids).mean()),
                "agreement_with_torch": float(
                    (onnx_probabilities.argmax(axis=1) == probabilities.argmax(axis=1)).mean()
                ),
            }
    return {
        "params": model.params.to_dict()
        | {
            "max_length": model.encoding.max_length,
            "truncation": model.encoding.truncation,
            "predict_max_length": model.predict_length,
        },
        "metrics": metrics,
        "backends": backends,
        "train_rows": model.train_rows,
        "test_rows": len(test_rows),
        "train_seconds": trained.train_seconds,
        "train_samples_per_second": trained.train_samples_per_second,
        "bf16": trained.bf16,
        "epochs_run": len(trained.history),
        "class_weights": trained.class_weights,
        "peak_rss_mib": model.peak_rss_mib,
        "temperature": model.temperature,
        "accuracy_by_predict_length": accuracy_by_predict_length,
    }


def tune_and_score(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    overrides: dict[str, str],
    trials: int,
    tune_max_train_rows: int,
) -> dict:
    """The pipeline's tune step, then training with what it chose: an Optuna study of `trials` trials on a
    stratified sample of `tune_max_train_rows` training rows (the pipeline's defaults), validated on the whole
    validation split; then `train_and_score` on all the training rows with the best trial's parameters."""
    import mlflow

    from textclf.registry.tracking import configure
    from textclf.train.modeling import PACKAGED_MINILM
    from textclf.train.tuning import run_study, stratified_sample

    encoding, params = _encoding_and_params(overrides)
    max_length, truncation = encoding.max_length, encoding.truncation
    prepared, label_map = _prepare({"train": train, "validation": validation}, max_length, truncation)
    # As the tune step: trials run the epochs the final training on every row gets.
    params = params.for_model(PACKAGED_MINILM).for_data(len(prepared["train"]))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work, PeakMemory() as memory:
        configure(f"sqlite:///{Path(work) / 'mlflow.db'}")
        with mlflow.start_run():
            result, study = run_study(
                PACKAGED_MINILM,
                stratified_sample(prepared["train"], tune_max_train_rows, params.seed),
                prepared["validation"],
                label_map,
                params,
                trials,
                f"sqlite:///{Path(work) / 'optuna.db'}",
                "bench",
                Path(work),
                max_length,
                truncation,
                show_progress=False,
            )
            best_trial = study.best_trial.number if result.best_value is not None else None
    tuning_seconds = time.perf_counter() - started
    chosen = result.best_params.to_dict()
    scored = train_and_score(train, validation, test, {**overrides, **{k: str(v) for k, v in chosen.items()}})
    return scored | {
        "tuning_seconds": tuning_seconds,
        "tuning_peak_rss_mib": memory.peak_mib,
        "tuning_best_validation": result.best_value,
        "tuning_objective": result.objective,
        "tuned_params": chosen,
        # Trial 0 is the configured recipe (`configured_point`): 0 here means tuning kept the defaults.
        "best_trial": best_trial,
    }


def untrained_and_score(train: pd.DataFrame, test: pd.DataFrame, overrides: dict[str, str]) -> dict:
    """The base model with a fresh head and no fine-tuning, the evaluate step's "confidence before" baseline."""
    from textclf.data.cleaning import CleaningConfig
    from textclf.data.preprocess import LabelMap
    from textclf.data.sources import LABEL
    from textclf.evaluate.baselines import untrained_baseline
    from textclf.train.modeling import PACKAGED_MINILM

    encoding, _ = _encoding_and_params(overrides)
    started = time.perf_counter()
    with PeakMemory() as memory:
        metrics = untrained_baseline(
            PACKAGED_MINILM,
            test,
            LabelMap.from_labels(train[LABEL]),
            CleaningConfig(),
            encoding.max_length,
            encoding.predict_max_length,
            SEED,
            encoding.truncation,
        )
    return {"metrics": metrics, "seconds": time.perf_counter() - started, "peak_rss_mib": memory.peak_mib}


def tfidf_and_score(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """TF-IDF + logistic regression, the evaluate step's baseline, on the same splits."""
    from textclf.data.cleaning import CleaningConfig
    from textclf.data.preprocess import LabelMap
    from textclf.data.sources import LABEL
    from textclf.evaluate.baselines import tfidf_baseline

    started = time.perf_counter()
    with PeakMemory() as memory:
        metrics = tfidf_baseline(train, test, LabelMap.from_labels(train[LABEL]), CleaningConfig(), SEED)
    return {"metrics": metrics, "train_seconds": time.perf_counter() - started, "peak_rss_mib": memory.peak_mib}
