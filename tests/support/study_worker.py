"""A tuning worker with a synthetic objective, run as its own process by the parallel-study tests:
`python -m tests.support.study_worker STORAGE STUDY TRIALS SECONDS_PER_TRIAL [DIE_IN_TRIAL]`.

The score is a fixed function of the sampled parameters and each trial reports three intermediate values, so
sampling and pruning both decide the outcome; SECONDS_PER_TRIAL sets how fast this worker is, and DIE_IN_TRIAL
makes it exit without a word in the middle of that trial, as a killed pod would."""

import math
import os
import sys
import time

import optuna

from textclf.train.parallel_study import open_study, run_trials


def score(trial: optuna.Trial) -> float:
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    batch_size = trial.suggest_categorical("batch_size", [16, 32, 64])
    warmup = trial.suggest_float("warmup_ratio", 0.0, 0.2)
    return -((math.log10(learning_rate) + 3.5) ** 2) - abs(warmup - 0.1) - (batch_size == 64) * 0.3


def main(storage: str, study_name: str, trials: int, seconds: float, die_in: int | None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(storage, study_name, seed=7)

    def objective(trial: optuna.Trial) -> float:
        final = score(trial)
        for step in range(3):
            if trial.number == die_in:
                time.sleep(seconds)
                os._exit(3)
            time.sleep(seconds / 3)
            trial.report(final * (3 - step) * 0.5 + final, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final

    print(run_trials(study, objective, trials))


if __name__ == "__main__":
    die = int(sys.argv[5]) if len(sys.argv) > 5 else None
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), die)
