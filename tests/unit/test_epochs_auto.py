"""`epochs: 0` and `early_stopping_patience: 0` (auto): a few epochs on plenty of data, more on small data so
training takes enough optimizer steps, with the patience a longer run's noisy validation needs."""

from __future__ import annotations

import pytest

from textclf.train.cross_validation import fold_recipe
from textclf.train.trainer import (
    AUTO_EPOCHS,
    AUTO_EPOCHS_MAX,
    AUTO_EPOCHS_MIN_STEPS,
    TrainingParams,
    auto_epochs,
    auto_patience,
)

pytestmark = pytest.mark.unit


def test_plenty_of_data_gets_the_usual_few_epochs() -> None:
    assert auto_epochs(22_362, 32) == AUTO_EPOCHS  # the whole AG News sample: 699 steps an epoch
    assert auto_epochs(AUTO_EPOCHS * AUTO_EPOCHS_MIN_STEPS * 32, 32) == AUTO_EPOCHS


@pytest.mark.parametrize("rows", [1, 10, 1_800, 3_000, 5_000])
def test_small_data_trains_for_at_least_the_minimum_steps_up_to_the_cap(rows: int) -> None:
    epochs = auto_epochs(rows, 32)
    steps_per_epoch = -(-rows // 32)
    assert AUTO_EPOCHS <= epochs <= AUTO_EPOCHS_MAX
    assert epochs * steps_per_epoch >= AUTO_EPOCHS_MIN_STEPS or epochs == AUTO_EPOCHS_MAX
    # One epoch fewer would not reach the minimum: no more epochs than needed.
    assert (epochs - 1) * steps_per_epoch < AUTO_EPOCHS_MIN_STEPS or epochs == AUTO_EPOCHS


def test_epochs_never_fall_as_data_shrink() -> None:
    counts = [auto_epochs(rows, 16) for rows in range(1, 20_000, 97)]
    assert counts == sorted(counts, reverse=True)


def test_patience_is_one_epoch_in_short_runs_and_two_in_long_ones() -> None:
    assert [auto_patience(epochs) for epochs in (1, AUTO_EPOCHS, AUTO_EPOCHS + 1, AUTO_EPOCHS_MAX)] == [1, 1, 2, 2]


def test_for_data_resolves_only_what_is_auto() -> None:
    resolved = TrainingParams().for_data(1_800)
    assert (resolved.epochs, resolved.early_stopping_patience) == (auto_epochs(1_800, 32), 2)
    assert resolved.for_data(100_000) == resolved, "resolving twice changes nothing"
    set_by_user = TrainingParams(epochs=5, early_stopping_patience=3).for_data(10)
    assert (set_by_user.epochs, set_by_user.early_stopping_patience) == (5, 3)
    assert TrainingParams(epochs=8).for_data(10).early_stopping_patience == 2
    assert TrainingParams().for_data(100_000).early_stopping_patience == 1


def test_every_fold_trains_with_one_recipe_decided_for_a_fold_size(tiny_model_dir) -> None:
    recipe = fold_recipe(TrainingParams(), str(tiny_model_dir), rows=2_000, folds=5, validation_fraction=0.1)
    assert recipe.finetune == "full"
    assert recipe.epochs == auto_epochs(1_440, 32)  # 2,000 rows less one fold of five, less 10 % validation
