"""Inference backends of a model directory: PyTorch on the trained weights, and ONNX Runtime on the same model
exported to ONNX, in fp32 and with its weights quantized to int8.

The export goes straight through `torch.onnx.export` and ONNX Runtime's own tools (its transformer optimizer
fuses BERT-family attention, layer norms and GELU; `quantize_dynamic` quantizes the weights of the matrix
multiplications): the `optimum-onnx` package would pin transformers below the version textclf needs.

Which backend serves is decided by measurement: training records each backend's accuracy on the validation
split (`measure_backends`); `auto` serves the fastest backend on the serving machine among those within
`AUTO_ACCURACY_TOLERANCE` of PyTorch's accuracy there.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from textclf.registry.model_dir import ONNX_FILES, ModelDirectory
from textclf.runtime.cpu import available_cpus, cpu_supports_bf16

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

BackendName = Literal["torch", "onnx", "onnx-int8"]
BackendChoice = Literal["auto", "torch", "onnx", "onnx-int8"]
AUTO_BACKEND = "auto"
TORCH_BACKEND = "torch"
BACKENDS: tuple[str, ...] = (TORCH_BACKEND, *ONNX_FILES)
AUTO_ACCURACY_TOLERANCE = 0.003
"""`auto` serves a backend only if its recorded validation accuracy is at most 0.3 points below PyTorch's."""
ONNX_OPSET = 17
# The texts `auto` times each candidate on: one text of about 20 words alone (a lone request) and 32 of them
# (a batch under load), after a warm-up, in rounds.
TIMING_TEXT = "the markets rallied on tuesday after the central bank said it would hold interest rates steady this year"
TIMING_BATCH_SIZES = (1, 32)
TIMING_ROUNDS = 3
TIMING_REPEATS = 5
TIMING_PAUSE_SECONDS = 0.1


class Backend(Protocol):
    """One forward pass over padded token ids: the logits and, where the backend offers them, the mean-pooled
    last hidden states."""

    name: str

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, embeddings: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


class TorchBackend:
    """The model in PyTorch, under bf16 autocast where the CPU has native bf16 kernels."""

    name = TORCH_BACKEND

    def __init__(self, model: PreTrainedModel, bf16: bool | None = None):
        self.model = model.eval()
        self.bf16 = cpu_supports_bf16() if bf16 is None else bf16

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, embeddings: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        mask = torch.from_numpy(attention_mask)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with torch.inference_mode(), autocast:
            output = self.model(
                input_ids=torch.from_numpy(input_ids), attention_mask=mask, output_hidden_states=embeddings
            )
            pooled = None
            if embeddings:
                weights = mask.unsqueeze(-1).float()
                summed = (output.hidden_states[-1].float() * weights).sum(dim=1)
                pooled = (summed / weights.sum(dim=1).clamp(min=1.0)).numpy()
            return output.logits.float().numpy(), pooled


class OnnxBackend:
    """The exported graph in an ONNX Runtime session on the CPU. Logits only: the drift embeddings come from
    the PyTorch backend (`TextClassifier.load(..., backend="torch")`)."""

    def __init__(self, name: str, path: Path, threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads if threads > 0 else available_cpus()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.name = name
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, embeddings: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if embeddings:
            raise ValueError(f"the {self.name} backend computes logits only; load the model with backend='torch'")
        (logits,) = self.session.run(
            ["logits"], {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        )
        return logits, None


def export_onnx(model_dir: Path, destination: Path | None = None) -> dict[str, Path]:
    """Write `model.onnx` (fp32, fused by ONNX Runtime's transformer optimizer where the architecture is
    BERT-like) and `model.int8.onnx` (its weights dynamically quantized to int8) for a model directory, into
    `destination` (default: the directory itself). Returns the path of each backend's file."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModelForSequenceClassification

    destination = destination or model_dir
    destination.mkdir(parents=True, exist_ok=True)
    # Eager attention traces to the MatMul/Softmax pattern the optimizer fuses into its Attention kernel.
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    example = torch.ones((2, 8), dtype=torch.long)
    paths = {name: ModelDirectory(destination).onnx_file(name) for name in ONNX_FILES}
    with tempfile.TemporaryDirectory(prefix="textclf-onnx-") as scratch:
        traced = Path(scratch) / "traced.onnx"
        # The tracer warns about Python branches on shapes (transformers' mask helpers); the dynamic-shape test
        # (tests/unit/test_backends.py) checks the graph at other batch sizes and lengths instead.
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example, torch.ones_like(example)),
                str(traced),
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "logits": {0: "batch"},
                },
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        optimized = optimizer.optimize_model(
            str(traced),
            model_type="bert",
            num_heads=model.config.num_attention_heads,
            hidden_size=model.config.hidden_size,
        )
        optimized.save_model_to_file(str(paths["onnx"]))
    quantize_dynamic(
        paths["onnx"],
        paths["onnx-int8"],
        weight_type=QuantType.QInt8,
        # One scale per output channel: on a MiniLM sentiment model's validation split it kept 0.866 accuracy
        # where one scale per tensor kept 0.859 (PyTorch: 0.870), at the same speed.
        per_channel=True,
        # The fused operators are outside the ONNX domain, where shape inference finds no types.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return paths


@dataclass(frozen=True)
class BackendTiming:
    backend: str
    seconds_per_text: dict[int, float]
    """Median seconds per text at each timing batch size."""

    @property
    def cost(self) -> float:
        """One lone request plus one text of a full batch: what `auto` minimizes."""
        return sum(self.seconds_per_text.values())


def time_backends(predictors: dict[str, Callable[[list[str]], Any]]) -> list[BackendTiming]:
    """How fast each backend's whole predict path (tokenization included) is on this machine: its median over
    `TIMING_ROUNDS` rounds of `TIMING_REPEATS` runs at each batch size, the backends taking turns in a rotating
    order, each turn after a pause. Without the pause a backend ran while the thread pool of the one before still
    spun (a lone text measured up to 3x slower on 2 cores), and with one turn each a burst of noise on a shared
    machine decided alone: `auto` once chose the fp32 graph over an int8 one twice as fast."""
    names = list(predictors)
    runs: dict[str, dict[int, list[float]]] = {name: {size: [] for size in TIMING_BATCH_SIZES} for name in names}
    for round_index in range(TIMING_ROUNDS):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(TIMING_PAUSE_SECONDS)
            for size in TIMING_BATCH_SIZES:
                texts = [TIMING_TEXT] * size
                predictors[name](texts)
                for _ in range(TIMING_REPEATS):
                    started = time.perf_counter()
                    predictors[name](texts)
                    runs[name][size].append((time.perf_counter() - started) / size)
    return [
        BackendTiming(name, {size: float(np.median(times)) for size, times in runs[name].items()}) for name in names
    ]


class BackendUnavailable(RuntimeError):
    """A model cannot be served by any backend this environment has installed; the message says what to add."""


BACKEND_PACKAGES: dict[str, str] = {TORCH_BACKEND: "torch", **dict.fromkeys(ONNX_FILES, "onnxruntime")}
"""The package each backend runs on. The serving image holds ONNX Runtime only (docs/deploying.md, "Images")."""


def installed_backends() -> list[str]:
    """The backends whose runtime this environment can import, in `BACKENDS` order."""
    return [name for name in BACKENDS if importlib.util.find_spec(BACKEND_PACKAGES[name]) is not None]


def require_installed(backend: str) -> None:
    package = BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        raise BackendUnavailable(
            f"the {backend} backend needs {package}, which this environment lacks: install it "
            f"(pip install 'textclf[{'train' if backend == TORCH_BACKEND else 'serving'}]'), or serve with "
            f"{' or '.join(installed_backends()) or 'another installation'}"
        )


def eligible_backends(recorded: dict[str, dict[str, Any]], installed: Sequence[str] = BACKENDS) -> list[str]:
    """The backends `auto` may serve: PyTorch, and every other backend whose recorded validation accuracy is
    within `AUTO_ACCURACY_TOLERANCE` of PyTorch's; of those, the ones `installed` (an image without PyTorch
    serves the ONNX graphs alone). None of them installed is an error that says why."""
    torch_accuracy = recorded.get(TORCH_BACKEND, {}).get("validation_accuracy")
    if torch_accuracy is None:
        eligible = [TORCH_BACKEND]
    else:
        # A hair of slack so that exactly 0.3 points below counts as within, whatever the float rounding.
        lowest = torch_accuracy - AUTO_ACCURACY_TOLERANCE - 1e-9
        eligible = [TORCH_BACKEND] + [
            name
            for name in ONNX_FILES
            if recorded.get(name, {}).get("validation_accuracy") is not None
            and recorded[name]["validation_accuracy"] >= lowest
        ]
    servable = [name for name in eligible if name in installed]
    if not servable:
        missing = sorted({BACKEND_PACKAGES[name] for name in eligible})
        accuracies = {name: recorded.get(name, {}).get("validation_accuracy") for name in ONNX_FILES}
        raise BackendUnavailable(
            f"this model may be served only by {', '.join(eligible)} (recorded ONNX accuracy: {accuracies}), and "
            f"this environment lacks {' and '.join(missing)} (it has {', '.join(installed) or 'no backend'}): serve "
            "it with the components image or an installation of textclf[all]"
        )
    return servable


def accuracy_record(predicted: Sequence[str], expected: Sequence[str], reference_predicted: Sequence[str]) -> dict:
    """One backend's accuracy on labelled texts, and how often it agrees with PyTorch's labels."""
    predicted, expected = np.asarray(predicted), np.asarray(expected)
    return {
        "validation_accuracy": float((predicted == expected).mean()) if len(expected) else 0.0,
        "agreement_with_torch": float((predicted == np.asarray(reference_predicted)).mean()) if len(expected) else 1.0,
        "samples": len(expected),
    }
