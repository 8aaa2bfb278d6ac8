"""How every settings model is read: its defaults, then a YAML file, then <PREFIX><FIELD> variables (<PREFIX><GROUP>__
<FIELD> inside a group), then the command line's overrides (dotted keys reach inside groups), merged by
pydantic-settings. A model's deprecated flat names (its `FLAT_NAMES`: old name -> dotted place) are moved to their
place in each source, with a FutureWarning, so each source keeps its precedence whichever names it uses."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Settings = TypeVar("Settings", bound=BaseModel)
# Nested settings in environment variables: TEXTCLF_TRAINING__LEARNING_RATE, TEXTCLF_MONITOR_POLICY__MIN_WINDOW_SIZE;
# in YAML as mappings; on the command line as dotted keys: --set training.learning_rate=...
NESTED_ENV_DELIMITER = "__"


def translate_flat_names(values: Mapping[str, Any], flat_names: Mapping[str, str], where: str) -> dict[str, Any]:
    """`values` with each deprecated flat key (`learning_rate`) moved to its dotted place (`training.
    learning_rate`), with a FutureWarning naming both; a value already set at the new place is kept."""
    translated = dict(values)
    for old, new in flat_names.items():
        if old not in translated:
            continue
        value = translated.pop(old)
        *parents, leaf = new.split(".")
        node = translated
        for parent in parents:
            existing = node.get(parent)
            # A group given as a model (PipelineConfig(training=TrainingRecipe(...))) is read as its fields.
            node[parent] = existing.model_dump() if isinstance(existing, BaseModel) else dict(existing or {})
            node = node[parent]
        node.setdefault(leaf, value)
        warnings.warn(
            f"{where}: '{old}' is now '{new}' (the flat name is accepted until the next release)",
            FutureWarning,
            stacklevel=2,
        )
    return translated


def _expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`{"policy.min_window_size": 40}` as `{"policy": {"min_window_size": 40}}`; unset (None) values dropped."""
    expanded: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = expanded
        for depth, parent in enumerate(parents):
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key} sets a field inside {'.'.join(parents[: depth + 1])}, which is also set whole")
        node[leaf] = value
    return expanded


class _YamlFile(PydanticBaseSettingsSource):
    """The YAML file's mapping (its own errors name the file)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        loaded = yaml.safe_load(self.path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{self.path} must hold a mapping of configuration fields")
        return loaded


class _FlatNamesMoved(PydanticBaseSettingsSource):
    """Another source's values with the deprecated flat names moved to their groups, so that each source keeps
    its precedence whichever names it uses."""

    def __init__(self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource, where: str) -> None:
        super().__init__(settings_cls)
        self.source, self.where = source, where

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ translates the wrapped source's mapping

    def __call__(self) -> dict[str, Any]:
        flat_names = getattr(self.settings_cls, "FLAT_NAMES", {})
        return translate_flat_names(self.source(), flat_names, self.where)


class _DeprecatedEnvironment(PydanticBaseSettingsSource):
    """<PREFIX><FLAT NAME> variables of the deprecated flat names (TEXTCLF_TRIALS), as flat keys."""

    def __init__(self, settings_cls: type[BaseSettings], prefix: str) -> None:
        super().__init__(settings_cls)
        self.prefix = prefix

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every flat name at once

    def __call__(self) -> dict[str, Any]:
        flat_names = getattr(self.settings_cls, "FLAT_NAMES", {})
        return {
            name: os.environ[f"{self.prefix}{name.upper()}"]
            for name in flat_names
            if f"{self.prefix}{name.upper()}" in os.environ
        }


def load_settings(
    model: type[Settings],
    env_prefix: str,
    yaml_path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults, then the YAML file, then <PREFIX><FIELD> variables (<PREFIX><GROUP>__<FIELD> inside a group),
    then explicit overrides (dotted keys reach inside groups), merged by pydantic-settings."""

    class Sourced(BaseSettings, model):  # type: ignore[misc, valid-type]
        model_config = SettingsConfigDict(
            env_prefix=env_prefix,
            env_nested_delimiter=NESTED_ENV_DELIMITER,
            extra="forbid",
            frozen=True,
            title=model.__name__,
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # First wins: the command line, the environment (current names over deprecated ones), the YAML file.
            return (
                _FlatNamesMoved(
                    settings_cls, InitSettingsSource(settings_cls, _expand_dotted(overrides or {})), "--set"
                ),
                EnvSettingsSource(settings_cls),
                _FlatNamesMoved(settings_cls, _DeprecatedEnvironment(settings_cls, env_prefix), "environment"),
                _FlatNamesMoved(settings_cls, _YamlFile(settings_cls, yaml_path), str(yaml_path)),
            )

    return model.model_validate(Sourced().model_dump())
