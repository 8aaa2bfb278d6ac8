"""`finetune: auto`: full fine-tuning for encoders up to FULL_FINETUNE_MAX_PARAMETERS, LoRA beyond, decided
from the encoder's configuration alone, before training, tuning and logging need the mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertConfig

from textclf.train.modeling import FULL_FINETUNE_MAX_PARAMETERS, parameter_count, resolve_finetune
from textclf.train.trainer import DEFAULT_LEARNING_RATE, TrainingParams

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def large_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The configuration of a BERT-large-sized encoder (~335M parameters), without weights."""
    directory = tmp_path_factory.mktemp("large-config")
    BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096).save_pretrained(
        directory
    )
    return directory


def test_parameters_are_counted_from_the_configuration(tiny_model_dir: Path, large_config_dir: Path) -> None:
    from transformers import AutoModel

    assert parameter_count(str(tiny_model_dir)) == AutoModel.from_pretrained(tiny_model_dir).num_parameters()
    assert 300_000_000 < parameter_count(str(large_config_dir)) < 360_000_000  # no weights file exists


def test_auto_is_full_for_small_encoders_and_lora_for_large_ones(tiny_model_dir: Path, large_config_dir: Path) -> None:
    assert resolve_finetune("auto", str(tiny_model_dir)) == "full"
    assert resolve_finetune("auto", str(large_config_dir)) == "lora"
    assert parameter_count(str(large_config_dir)) > FULL_FINETUNE_MAX_PARAMETERS
    assert resolve_finetune("lora", str(tiny_model_dir)) == "lora"
    assert resolve_finetune("full", str(large_config_dir)) == "full"
    with pytest.raises(ValueError, match="'auto', 'lora' or 'full'"):
        resolve_finetune("adapters", str(tiny_model_dir))  # type: ignore[arg-type]


def test_the_packaged_minilm_trains_fully_by_default() -> None:
    from textclf.train.modeling import PACKAGED_MINILM

    params = TrainingParams().for_model(PACKAGED_MINILM)
    assert TrainingParams().finetune == "auto"
    assert params.finetune == "full"
    assert params.effective_learning_rate == DEFAULT_LEARNING_RATE["full"]


def test_an_unresolved_auto_has_no_learning_rate_to_log() -> None:
    with pytest.raises(ValueError, match="for_model"):
        TrainingParams().to_dict()
    assert TrainingParams(learning_rate=1e-4).replace(finetune="lora").to_dict()["learning_rate"] == 1e-4
