"""KFP v2 components: one folder per step, each a thin adapter over `textclf.steps`.

Each argument is described once. A pipeline parameter (or parameter group) is described by its configuration
field; what steps hand each other is described in `STEP_ARGUMENTS`; a component's docstring describes only what is
its own (or says more about a shared one). `textclf_component` writes the rest into the docstring's `Args:`, from
which KFP puts every description into the compiled spec (the KFP UI shows them) and `make compile` writes each
component's README."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from kfp import dsl
from pydantic import BaseModel

from textclf.config import PipelineConfig
from textclf.names import COMPONENTS_IMAGE

STEP_ARGUMENTS = {
    "train_split": "the raw training split (ingest's output)",
    "validation_split": "the raw validation split",
    "test_split": "the raw test split",
    "train_data": "the prepared (cleaned, tokenized) training split",
    "validation_data": "the prepared validation split",
    "test_data": "the prepared test split",
    "preprocessing": "what preprocessing decided: labels, cleaning, base model, max lengths",
    "model": "the serving-ready model directory (the model-directory contract)",
    "evaluation": "test metrics and baselines (JSON)",
    "data_fingerprint": "content hash of the ingested (text, label) pairs",
    "mlflow_run_id": "the pipeline's MLflow run, opened by ingest; this step logs into it",
    "version": "the registered version this step acts on",
}


def group_description(summary: str, model: type[BaseModel]) -> str:
    """A parameter group as one argument's description: what it is, then each field and what it means."""
    fields = "; ".join(f"{name}: {field.description}" for name, field in model.model_fields.items())
    return f"{summary.rstrip('.')}. A JSON object of these fields (defaults for those left out): {fields}."


def shared_descriptions() -> dict[str, str]:
    """Every description an argument can take from elsewhere: the pipeline's parameters and groups, and what the
    steps hand each other."""
    described = {
        name: group_description(field.description or name, field.annotation)
        if name in PipelineConfig.groups()
        else (field.description or "").rstrip(".") + "."
        for name, field in PipelineConfig.model_fields.items()
    }
    return {**described, **{name: f"{text}." for name, text in STEP_ARGUMENTS.items()}}


_ARGS_HEADER = re.compile(r"^(?P<indent>[ \t]*)Args:[ \t]*$", re.MULTILINE)
_DESCRIBED = re.compile(r"^[ \t]+(?P<name>\w+):", re.MULTILINE)


def described(func: Callable[..., Any], descriptions: dict[str, str]) -> str:
    """`func`'s docstring with an `Args:` entry added for each argument it leaves undescribed, from
    `descriptions`; an argument described nowhere is an error (KFP would show it bare)."""
    doc = inspect.cleandoc(func.__doc__ or "")
    header = _ARGS_HEADER.search(doc)
    if header is None:
        doc = f"{doc}\n\nArgs:" if doc else "Args:"
    own_args = doc[header.end() :] if header else ""
    already = {match["name"] for match in _DESCRIBED.finditer(own_args)}
    missing = [name for name in inspect.signature(func).parameters if name not in already]
    unknown = [name for name in missing if name not in descriptions]
    if unknown:
        raise TypeError(f"{func.__name__}: describe {unknown} in its docstring's Args (or in STEP_ARGUMENTS)")
    added = "".join(f"\n    {name}: {descriptions[name]}" for name in missing)
    if header is None:
        return doc + added
    return doc[: header.end()] + added + doc[header.end() :]


def every_argument_described(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` (a component or pipeline function) with each argument's description in its docstring, for KFP."""
    func.__doc__ = described(func, shared_descriptions())
    return func


def textclf_component(func: Callable[..., Any]) -> Any:
    """A KFP component on the components image, which already holds textclf and kfp, so a step starts without a
    pip install (and works in clusters that cannot reach a package index); every argument described."""
    return dsl.component(every_argument_described(func), base_image=COMPONENTS_IMAGE, install_kfp_package=False)
