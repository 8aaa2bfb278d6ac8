"""Behavioural tests in the spirit of CheckList (Ribeiro et al., ACL 2020): what a classifier must get right
beyond its test-split accuracy.

Three kinds of test, each a list of cases:
- `mft` (minimum functionality): simple texts with a known label; a case fails when the prediction differs.
- `inv` (invariance): a perturbation that must not change the prediction (typos, names, punctuation, casing);
  a case fails when the predicted label changes.
- `dir` (directional): a perturbation that must move the score of `expect_label` up or down by at least
  `min_change` (negation for sentiment); a case fails when it does not.

Tests come from a YAML file (`BehaviourSuite`) or the built-in suite for sentiment; texts are listed, expanded
from a template with lists to fill it, or sampled from the test split. Every expansion and perturbation is
deterministic for a seed, so two runs of the same model report the same cases."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

TestType = Literal["mft", "inv", "dir"]
Perturbation = Literal["typos", "names", "punctuation", "casing", "negation"]
Direction = Literal["up", "down"]

BUILT_IN_SUITES = ("sentiment",)
"""Suites shipped with textclf (`src/textclf/evaluate/suites/NAME.yaml`)."""

NO_BEHAVIOUR_TESTS = "none"
AUTOMATIC_SUITE = "auto"
FAILED_EXAMPLES_KEPT = 3
"""Failed cases each test's report keeps, for people to read."""


class BehaviourTest(BaseModel):
    """One behavioural test: where its texts come from and what the model must do with them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: TestType
    capability: str = Field("", description="what the test probes (Vocabulary, Robustness, Negation, ...)")
    texts: list[str] = Field(default_factory=list, description="texts listed in full")
    template: str = Field("", description="a text with {placeholders}, each filled from `fill`")
    fill: dict[str, list[str]] = Field(default_factory=dict, description="the values of each placeholder")
    test_split_sample: int = Field(0, ge=0, description="also take up to this many texts of the test split")
    label: str = Field("", description="mft: the label every text must get")
    perturbation: Perturbation | None = Field(None, description="inv and dir: how each text is changed")
    expect_label: str = Field("", description="dir: the label whose score must move")
    direction: Direction = Field("up", description="dir: which way the score of `expect_label` must move")
    min_change: float = Field(
        0.1, ge=0, le=1, description="dir: the least the score must move (less where it has less room to move)"
    )
    max_cases: int = Field(200, ge=1, description="cases kept after expansion (a seeded sample beyond it)")

    @model_validator(mode="after")
    def _complete_for_its_type(self) -> BehaviourTest:
        missing = []
        if not (self.texts or self.template or self.test_split_sample):
            missing.append("texts, a template or test_split_sample")
        if self.template:
            placeholders = set(re.findall(r"{(\w+)}", self.template))
            unfilled = sorted(placeholders - set(self.fill))
            if unfilled:
                missing.append(f"fill values for {unfilled}")
            else:
                try:
                    self.template.format(**{name: "" for name in self.fill})
                except (IndexError, KeyError, ValueError) as error:
                    missing.append(f"a template whose only braces are {{name}} placeholders ({error!r})")
        if self.type == "mft" and not self.label:
            missing.append("label (the label every text must get)")
        if self.type in ("inv", "dir") and self.perturbation is None:
            missing.append("perturbation (typos, names, punctuation, casing or negation)")
        if self.type == "dir" and not self.expect_label:
            missing.append("expect_label (the label whose score must move)")
        if missing:
            raise ValueError(f"behavioural test {self.name!r} ({self.type}) needs {'; '.join(missing)}")
        return self


class BehaviourSuite(BaseModel):
    """A YAML file of behavioural tests for one model's labels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: list[BehaviourTest] = Field(min_length=1)
    label_aliases: dict[str, list[str]] = Field(
        default_factory=dict,
        description="the suite's label names and the model labels each may stand for (first one present wins)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> BehaviourSuite:
        names = [test.name for test in self.tests]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"behavioural test names must be unique; repeated: {repeated}")
        return self

    @classmethod
    def from_yaml(cls, text: str) -> BehaviourSuite:
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"a behavioural test suite must be valid YAML: {error}") from error
        if not isinstance(values, dict):
            raise ValueError("a behavioural test suite is a YAML mapping with a `tests` list")
        return cls.model_validate(values)

    @classmethod
    def built_in(cls, name: str) -> BehaviourSuite:
        if name not in BUILT_IN_SUITES:
            raise ValueError(f"no built-in behavioural suite {name!r}; built in: {list(BUILT_IN_SUITES)}")
        return cls.from_yaml(resources.files("textclf.evaluate").joinpath(f"suites/{name}.yaml").read_text())

    def label_map_for(self, model_labels: Sequence[str]) -> dict[str, str] | None:
        """The model label each of the suite's labels means, or None when some suite label has no match among
        `model_labels` (matched by name, ignoring case, directly or through `label_aliases`)."""
        by_folded = {label.casefold(): label for label in model_labels}
        mapping = {}
        for suite_label in self.labels_used():
            candidates = [suite_label, *self.label_aliases.get(suite_label, [])]
            found = next((by_folded[c.casefold()] for c in candidates if c.casefold() in by_folded), None)
            if found is None:
                return None
            mapping[suite_label] = found
        return mapping

    def labels_used(self) -> list[str]:
        return sorted({label for test in self.tests for label in (test.label, test.expect_label) if label})


def _read_spec(spec: str) -> tuple[BehaviourSuite | None, str]:
    """The suite `spec` names, before any labels are known (None for auto and none), and where it came from."""
    spec = spec.strip()
    if spec in ("", NO_BEHAVIOUR_TESTS, AUTOMATIC_SUITE):
        return None, spec
    if spec in BUILT_IN_SUITES:
        return BehaviourSuite.built_in(spec), f"the built-in {spec} suite"
    if "\n" in spec or spec.startswith("tests:"):
        return BehaviourSuite.from_yaml(spec), "the YAML text given as behaviour_tests"
    path = Path(spec)
    if not path.is_file():
        raise ValueError(
            f"behaviour_tests {spec!r} is not auto, none, a built-in suite {list(BUILT_IN_SUITES)}, "
            "YAML text or an existing YAML file"
        )
    return BehaviourSuite.from_yaml(path.read_text()), str(path)


def check_spec(spec: str) -> str:
    """`spec` if it names a readable, valid suite (checked before a run starts); raises `ValueError` saying
    what is wrong otherwise."""
    _read_spec(spec)
    return spec


def inline_spec(spec: str) -> str:
    """The YAML text of a suite given as a local file's path, for a run on a cluster, whose steps cannot read
    the submitter's files; other specs unchanged."""
    stripped = spec.strip()
    if stripped in (NO_BEHAVIOUR_TESTS, AUTOMATIC_SUITE, *BUILT_IN_SUITES) or "\n" in stripped:
        return spec
    path = Path(stripped)
    return path.read_text() if path.is_file() else spec


def load_suite(spec: str, model_labels: Sequence[str]) -> tuple[BehaviourSuite | None, str]:
    """The suite `spec` names for a model with `model_labels`, and a sentence saying what was chosen and why.

    `spec` is `auto` (the built-in sentiment suite when the labels are a sentiment pair, else none), `none`, a
    built-in suite's name, a YAML file's path, or the YAML text itself (a pipeline parameter on a cluster,
    where the step cannot read the submitter's files)."""
    if spec.strip() in ("", NO_BEHAVIOUR_TESTS):
        return None, "behavioural tests are off (behaviour_tests: none)"
    if spec.strip() == AUTOMATIC_SUITE:
        suite = BehaviourSuite.built_in("sentiment")
        if suite.label_map_for(model_labels) is None:
            return None, (
                f"no built-in behavioural suite fits the labels {list(model_labels)} (auto runs the sentiment suite "
                "on positive/negative labels); give behaviour_tests a YAML file of your own tests"
            )
        return suite, "the built-in sentiment suite (behaviour_tests: auto, sentiment labels)"
    suite, origin = _read_spec(spec)
    if suite.label_map_for(model_labels) is None:
        raise ValueError(
            f"behavioural suite {origin}: its labels {suite.labels_used()} do not match the model's labels "
            f"{list(model_labels)}; map them with label_aliases"
        )
    return suite, origin


# Perturbations: each returns the changed text, or None where it does not apply (a text without a name to change,
# a negation without a verb to negate); such cases are counted as not applicable, never as passes.

# First names from several cultures, swapped for one another by the `names` perturbation.
FIRST_NAMES = (
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Susan",
    "Richard",
    "Jessica",
    "Joseph",
    "Sarah",
    "Thomas",
    "Karen",
    "Charles",
    "Nancy",
    "Mohammed",
    "Fatima",
    "Ahmed",
    "Aisha",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Carlos",
    "Sofia",
    "Juan",
    "Maria",
    "Luis",
    "Ana",
    "Ivan",
    "Olga",
    "Pierre",
    "Camille",
    "Hans",
    "Greta",
    "Raj",
    "Priya",
    "Arjun",
    "Ananya",
    "Kwame",
    "Amara",
    "Chidi",
    "Ngozi",
    "Liam",
    "Emma",
)
_NAME_PATTERN = re.compile(r"\b(" + "|".join(FIRST_NAMES) + r")\b")
# Auxiliaries the `negation` perturbation negates ("is" → "is not"), and what marks a text as already negated.
_AUXILIARY = re.compile(r"\b(is|was|are|were|am|will|would|can|could|should|do|does|did|has|have|had)\b", re.I)
_NEGATED = re.compile(r"\b(not|no|never|nothing|nobody|neither|nor)\b|n't\b", re.I)
_WORD = re.compile(r"[^\W\d_]{4,}")
CLOSING_PUNCTUATION = ".!?,;:"


def _with_typo(text: str, rng: random.Random) -> str | None:
    """Swap two adjacent letters inside one word of four letters or more (CheckList's `add_typos`)."""
    words = list(_WORD.finditer(text))
    if not words:
        return None
    word = rng.choice(words)
    # Not the first letter (people rarely mistype it), and never two equal letters (no change).
    spots = [at for at in range(word.start() + 1, word.end() - 1) if text[at] != text[at + 1]]
    if not spots:
        return None
    at = rng.choice(spots)
    return text[:at] + text[at + 1] + text[at] + text[at + 2 :]


def _with_other_names(text: str, rng: random.Random) -> str | None:
    """Replace every first name from `FIRST_NAMES` with another one, the same name the same way."""
    found = sorted(set(_NAME_PATTERN.findall(text)))
    if not found:
        return None
    replacements = {name: rng.choice([other for other in FIRST_NAMES if other != name]) for name in found}
    return _NAME_PATTERN.sub(lambda match: replacements[match.group(1)], text)


def _with_other_punctuation(text: str, rng: random.Random) -> str | None:
    """Drop the closing punctuation, or add a full stop where there is none."""
    # str.rstrip, not a regular expression: "[.!?]+$" searched over a long run of "!" not at the end is quadratic.
    stripped = text.rstrip()
    unpunctuated = stripped.rstrip(CLOSING_PUNCTUATION)
    if unpunctuated != stripped:
        return unpunctuated
    return f"{stripped}." if stripped else None


def _with_other_casing(text: str, rng: random.Random) -> str | None:
    """Lower-case the text, or upper-case it where it is lower case already."""
    changed = text.upper() if text == text.lower() else text.lower()
    return changed if changed != text else None


def _negated(text: str, rng: random.Random) -> str | None:
    """Insert "not" after the first auxiliary verb of a text that holds no negation."""
    if _NEGATED.search(text):
        return None
    auxiliary = _AUXILIARY.search(text)
    if auxiliary is None:
        return None
    return f"{text[: auxiliary.end()]} not{text[auxiliary.end() :]}"


PERTURBATIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "typos": _with_typo,
    "names": _with_other_names,
    "punctuation": _with_other_punctuation,
    "casing": _with_other_casing,
    "negation": _negated,
}


def expand_texts(test: BehaviourTest, test_split_texts: Sequence[str], seed: int) -> list[str]:
    """The test's texts: listed, filled in from its template (every combination), and sampled from the test
    split; a seeded sample of `max_cases` where there are more."""
    texts = list(test.texts)
    if test.template:
        names = list(test.fill)
        for values in itertools.product(*(test.fill[name] for name in names)):
            texts.append(test.template.format(**dict(zip(names, values, strict=True))))
    if test.test_split_sample and test_split_texts:
        # The same seed for every test: tests that perturb the test split start from the same texts.
        rng = random.Random(f"{seed}:test-split-sample")
        pool = list(test_split_texts)
        texts += rng.sample(pool, min(test.test_split_sample, len(pool)))
    texts = list(dict.fromkeys(texts))
    if len(texts) > test.max_cases:
        texts = random.Random(f"{seed}:{test.name}:cap").sample(texts, test.max_cases)
    return texts


@dataclass
class TestResult:
    name: str
    type: TestType
    capability: str
    cases: int
    failures: int
    not_applicable: int
    failed_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.cases if self.cases else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "capability": self.capability,
            "cases": self.cases,
            "failures": self.failures,
            "failure_rate": self.failure_rate,
            "not_applicable": self.not_applicable,
            "failed_examples": self.failed_examples,
        }


ProbabilityFunction = Callable[[Sequence[str]], np.ndarray]
"""Class probabilities (one row per text, columns in the model's label order) for raw texts."""


def run_test(
    test: BehaviourTest,
    predict: ProbabilityFunction,
    model_labels: Sequence[str],
    label_map: dict[str, str],
    test_split_texts: Sequence[str] = (),
    seed: int = 0,
) -> TestResult:
    """Run one behavioural test against a model's probability function."""
    texts = expand_texts(test, test_split_texts, seed)
    rng = random.Random(f"{seed}:{test.name}:perturb")
    originals, changed = texts, [None] * len(texts)
    if test.perturbation is not None:
        perturbed = [PERTURBATIONS[test.perturbation](text, rng) for text in texts]
        pairs = [(text, other) for text, other in zip(texts, perturbed, strict=True) if other is not None]
        originals, changed = [text for text, _ in pairs], [other for _, other in pairs]
    not_applicable = len(texts) - len(originals)
    result = TestResult(test.name, test.type, test.capability, len(originals), 0, not_applicable)
    if not originals:
        return result
    index = {label: position for position, label in enumerate(model_labels)}
    before = predict(originals)
    after = predict(changed) if test.perturbation is not None else before
    for row, text in enumerate(originals):
        failure = _judge_case(test, before[row], after[row], index, label_map, model_labels)
        if failure is None:
            continue
        result.failures += 1
        if len(result.failed_examples) < FAILED_EXAMPLES_KEPT:
            example = {"text": text, **failure}
            if changed[row] is not None:
                example["perturbed"] = changed[row]
            result.failed_examples.append(example)
    return result


def _judge_case(
    test: BehaviourTest,
    before: np.ndarray,
    after: np.ndarray,
    index: dict[str, int],
    label_map: dict[str, str],
    model_labels: Sequence[str],
) -> dict[str, Any] | None:
    """None when the case passes, else what went wrong."""
    if test.type == "mft":
        expected = label_map[test.label]
        predicted = model_labels[int(before.argmax())]
        return None if predicted == expected else {"expected": expected, "predicted": predicted}
    if test.type == "inv":
        first, second = model_labels[int(before.argmax())], model_labels[int(after.argmax())]
        return None if first == second else {"predicted": first, "predicted_after": second}
    target = index[label_map[test.expect_label]]
    start, end = float(before[target]), float(after[target])
    room = 1.0 - start if test.direction == "up" else start
    required = min(test.min_change, room)
    moved = end - start if test.direction == "up" else start - end
    if moved >= required:
        return None
    return {
        "label": label_map[test.expect_label],
        "score": round(start, 4),
        "score_after": round(end, 4),
        "required": f"{test.direction} by {required:.3f}",
    }


@dataclass
class BehaviourReport:
    origin: str
    tests: list[TestResult]

    @property
    def cases(self) -> int:
        return sum(test.cases for test in self.tests)

    @property
    def failures(self) -> int:
        return sum(test.failures for test in self.tests)

    @property
    def max_failure_rate(self) -> float:
        """The largest failure rate of any one test: what the promotion gate's `max_behaviour_failure_rate`
        bounds, so a test that fails badly is not averaged away by many that pass."""
        return max((test.failure_rate for test in self.tests if test.cases), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "cases": self.cases,
            "failures": self.failures,
            "failure_rate": self.failures / self.cases if self.cases else 0.0,
            "max_failure_rate": self.max_failure_rate,
            "tests": [test.to_dict() for test in self.tests],
        }


def run_suite(
    suite: BehaviourSuite,
    origin: str,
    predict: ProbabilityFunction,
    model_labels: Sequence[str],
    test_split_texts: Sequence[str] = (),
    seed: int = 0,
) -> BehaviourReport:
    """Run every test of a suite whose labels `load_suite` matched to `model_labels`."""
    label_map = suite.label_map_for(model_labels)
    if label_map is None:
        raise ValueError(f"the suite's labels {suite.labels_used()} do not match the model's {list(model_labels)}")
    predict = _memoized(predict)
    return BehaviourReport(
        origin,
        [run_test(test, predict, model_labels, label_map, test_split_texts, seed) for test in suite.tests],
    )


def _memoized(predict: ProbabilityFunction) -> ProbabilityFunction:
    """`predict` asked once per distinct text: the tests of a suite share templates and test-split samples."""
    known: dict[str, np.ndarray] = {}

    def cached(texts: Sequence[str]) -> np.ndarray:
        unseen = list(dict.fromkeys(text for text in texts if text not in known))
        if unseen:
            known.update(zip(unseen, predict(unseen), strict=True))
        return np.stack([known[text] for text in texts])

    return cached
