"""Behavioural tests: each perturbation, each test type judged case by case against a rule-based classifier
whose answers are known, suites from YAML and the built-in sentiment suite, the model card and the gate."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from textclf.evaluate.behaviour import (
    PERTURBATIONS,
    BehaviourSuite,
    BehaviourTest,
    expand_texts,
    load_suite,
    run_suite,
    run_test,
)
from textclf.evaluate.report import behaviour_section
from textclf.registry.gate import ModelScore, PromotionPolicy, decide_promotion

pytestmark = pytest.mark.unit

LABELS = ("negative", "positive")
POSITIVE_WORDS = set(
    [
        "great",
        "excellent",
        "wonderful",
        "fantastic",
        "amazing",
        "good",
        "lovely",
        "brilliant",
        "enjoyable",
        "delightful",
        "loved",
        "enjoyed",
        "liked",
        "adored",
        "admired",
        "appreciated",
    ]
)


def keyword_model(texts) -> np.ndarray:
    """Positive with 0.9 when a positive word is there (0.2 otherwise); "not" flips it; upper-case text is
    always negative (a model with a known casing bug)."""
    rows = []
    for text in texts:
        words = {word.strip(".,!?").lower() for word in text.split()}
        positive = 0.9 if words & POSITIVE_WORDS else 0.2
        if "not" in words:
            positive = 1 - positive
        if text.isupper():
            positive = 0.1
        rows.append([1 - positive, positive])
    return np.asarray(rows)


def perturb(name: str, text: str, seed: int = 0) -> str | None:
    return PERTURBATIONS[name](text, random.Random(seed))


def test_a_typo_swaps_two_different_adjacent_letters_inside_one_word() -> None:
    text = "The service was excellent tonight"
    for seed in range(20):
        changed = perturb("typos", text, seed)
        assert changed is not None and changed != text and len(changed) == len(text)
        differing = [i for i, (a, b) in enumerate(zip(text, changed, strict=True)) if a != b]
        assert len(differing) == 2 and differing[1] == differing[0] + 1
        assert changed[differing[0]] == text[differing[1]] and changed[differing[1]] == text[differing[0]]
        assert text[differing[0] - 1].isalpha(), "the first letter of a word stays"
    assert perturb("typos", "a an by to 1234") is None, "no word of four letters: not applicable"


def test_names_are_replaced_consistently_and_texts_without_names_do_not_apply() -> None:
    changed = perturb("names", "Mary met John, and Mary left.")
    assert changed is not None and "Mary" not in changed and "John" not in changed
    first, second = changed.split(" met ")[0], changed.split(", and ")[1].split(" left")[0]
    assert first == second, "the same name is replaced the same way"
    assert perturb("names", "Nobody is named here.") is None
    assert perturb("names", "Maryland is a state.") is None, "whole words only"


def test_punctuation_casing_and_negation() -> None:
    assert perturb("punctuation", "It was great!!") == "It was great"
    assert perturb("punctuation", "It was great") == "It was great."
    assert perturb("casing", "It Was Great") == "it was great"
    assert perturb("casing", "it was great") == "IT WAS GREAT"
    assert perturb("casing", "123 !!") is None, "nothing to change case of"
    assert perturb("negation", "The movie was great.") == "The movie was not great."
    assert perturb("negation", "The movie wasn't great.") is None, "already negated"
    assert perturb("negation", "Great movie.") is None, "no auxiliary to negate"


def test_perturbations_survive_long_hostile_text_in_bounded_time() -> None:
    import time

    hostile = ("Mary\u202e was \u0000 great!? " + "\U0001f600" * 3 + "ﷺ" * 50 + " ") * 2_000
    started = time.perf_counter()
    for text in (hostile, "!" * 100_000 + "x", "!" * 100_000, "aaaa" * 25_000, "Mary " * 20_000, ""):
        for name in PERTURBATIONS:
            perturb(name, text)
    assert time.perf_counter() - started < 5


def test_minimum_functionality_fails_each_case_with_the_wrong_label() -> None:
    test = BehaviourTest(
        name="positives", type="mft", texts=["A great film.", "A dull film.", "Not great."], label="positive"
    )
    result = run_test(test, keyword_model, LABELS, {"positive": "positive"})
    assert (result.cases, result.failures) == (3, 2)
    assert {example["text"] for example in result.failed_examples} == {"A dull film.", "Not great."}
    assert result.failed_examples[0]["expected"] == "positive"


def test_invariance_fails_where_the_perturbation_changes_the_label() -> None:
    test = BehaviourTest(
        name="casing", type="inv", texts=["a great film", "a dull film", "A Great Film", "42"], perturbation="casing"
    )
    result = run_test(test, keyword_model, LABELS, {})
    # "a great film" → "A GREAT FILM" (upper case: negative) fails; "a dull film" stays negative;
    # "A Great Film" → "a great film" stays positive; "42" has no casing: not applicable.
    assert (result.cases, result.failures, result.not_applicable) == (3, 1, 1)
    assert result.failed_examples == [
        {"text": "a great film", "predicted": "positive", "predicted_after": "negative", "perturbed": "A GREAT FILM"}
    ]
    assert result.failure_rate == pytest.approx(1 / 3)


def test_directional_expectation_needs_the_score_to_move_far_enough() -> None:
    test = BehaviourTest(
        name="negation",
        type="dir",
        texts=["The film was great.", "The film was dull.", "Great film."],
        perturbation="negation",
        expect_label="negative",
        direction="up",
        min_change=0.2,
    )
    result = run_test(test, keyword_model, LABELS, {"negative": "negative"})
    # great: negative 0.1 → 0.9 passes; dull: negative 0.8 → 0.2 fails; "Great film." has no verb.
    assert (result.cases, result.failures, result.not_applicable) == (2, 1, 1)
    assert result.failed_examples[0]["text"] == "The film was dull."
    down = test.model_copy(update={"direction": "down"})
    assert run_test(down, keyword_model, LABELS, {"negative": "negative"}).failures == 1


def test_a_score_with_less_room_than_min_change_only_has_to_move_that_far() -> None:
    def saturated(texts) -> np.ndarray:
        return np.asarray([[0.97, 0.03] if "not" in text else [0.95, 0.05] for text in texts])

    test = BehaviourTest(
        name="n", type="dir", texts=["It is bad."], perturbation="negation", expect_label="negative", min_change=0.1
    )
    assert run_test(test, saturated, LABELS, {"negative": "negative"}).failures == 1, "0.95 → 0.97 is < 0.05 room"

    def at_ceiling(texts) -> np.ndarray:
        return np.asarray([[1.0, 0.0] for _ in texts])

    assert run_test(test, at_ceiling, LABELS, {"negative": "negative"}).failures == 0, "no room: staying passes"


def test_templates_expand_to_every_combination_capped_by_a_seeded_sample() -> None:
    test = BehaviourTest(
        name="t",
        type="mft",
        template="{a} {b}",
        fill={"a": ["x", "y", "z"], "b": ["1", "2"]},
        label="positive",
    )
    assert sorted(expand_texts(test, [], 0)) == ["x 1", "x 2", "y 1", "y 2", "z 1", "z 2"]
    capped = test.model_copy(update={"max_cases": 4, "test_split_sample": 3})
    first = expand_texts(capped, ["t1", "t2", "t3", "t4"], 7)
    assert len(first) == 4 and first == expand_texts(capped, ["t1", "t2", "t3", "t4"], 7)


def test_an_incomplete_test_says_what_it_needs() -> None:
    with pytest.raises(ValidationError, match="needs label"):
        BehaviourTest(name="m", type="mft", texts=["x"])
    with pytest.raises(ValidationError, match="perturbation"):
        BehaviourTest(name="i", type="inv", texts=["x"])
    with pytest.raises(ValidationError, match="expect_label"):
        BehaviourTest(name="d", type="dir", texts=["x"], perturbation="negation")
    with pytest.raises(ValidationError, match=r"fill values for \['thing'\]"):
        BehaviourTest(name="t", type="mft", template="a {thing}", label="x")
    with pytest.raises(ValidationError, match="texts, a template or test_split_sample"):
        BehaviourTest(name="e", type="mft", label="x")
    with pytest.raises(ValidationError, match="only braces"):
        BehaviourTest(name="b", type="mft", template="a {thing} {}", fill={"thing": ["x"]}, label="x")
    with pytest.raises(ValidationError, match="unique"):
        BehaviourSuite(tests=[BehaviourTest(name="a", type="mft", texts=["x"], label="y")] * 2)


def test_auto_runs_the_built_in_suite_on_sentiment_labels_only() -> None:
    suite, note = load_suite("auto", ("NEG", "pos"))
    assert suite is not None and "sentiment" in note
    assert suite.label_map_for(("NEG", "pos")) == {"negative": "NEG", "positive": "pos"}
    none, why = load_suite("auto", ("World", "Sports", "Business"))
    assert none is None and "YAML file" in why
    assert load_suite("none", LABELS)[0] is None


def test_a_suite_from_a_file_or_yaml_text_and_its_errors(tmp_path: Path) -> None:
    text = "tests:\n  - {name: sports, type: mft, texts: ['The match ended 2-1.'], label: Sports}\n"
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    for spec in (str(path), text):
        suite, _ = load_suite(spec, ("Sports", "World"))
        assert suite is not None and suite.tests[0].label == "Sports"
    with pytest.raises(ValueError, match="do not match the model's labels"):
        load_suite(str(path), ("negative", "positive"))
    with pytest.raises(ValueError, match="existing YAML file"):
        load_suite(str(tmp_path / "missing.yaml"), LABELS)
    with pytest.raises(ValueError, match="YAML mapping"):
        load_suite("- just\n- a list\n", LABELS)


def test_the_built_in_suite_runs_every_test_type_and_reports_per_test() -> None:
    suite, note = load_suite("sentiment", LABELS)
    assert {test.type for test in suite.tests} == {"mft", "inv", "dir"}
    split = ["i loved it.", "It was dull.", "Mary said it was great."]
    report = run_suite(suite, note, keyword_model, LABELS, split, seed=3)
    by_name = {test.name: test for test in report.tests}
    assert by_name["positive words"].failures == 0
    assert by_name["negated positive is negative"].failures == 0
    assert by_name["negation lowers a positive"].failures == 0
    # Upper-casing a positive text makes it negative for this model: the casing test finds the bug.
    assert by_name["casing"].failures >= 1
    assert report.max_failure_rate == max(test.failure_rate for test in report.tests)
    again = run_suite(suite, note, keyword_model, LABELS, split, seed=3)
    assert again.to_dict() == report.to_dict(), "deterministic for a seed"
    card = behaviour_section(report.to_dict())
    assert "## Behavioural tests" in card and "| casing | INV | Robustness |" in card


def test_the_suite_predicts_each_distinct_text_once() -> None:
    seen: list[str] = []

    def counting(texts) -> np.ndarray:
        seen.extend(texts)
        return keyword_model(texts)

    suite, note = load_suite("sentiment", LABELS)
    run_suite(suite, note, counting, LABELS, ["I loved it.", "It was dull."], seed=0)
    assert len(seen) == len(set(seen))


def test_the_gate_bounds_the_worst_behavioural_test() -> None:
    policy = PromotionPolicy(max_behaviour_failure_rate=0.2)
    passing = ModelScore("2", 0.9, {"a": 0.9}, behaviour_max_failure_rate=0.1)
    failing = ModelScore("2", 0.9, {"a": 0.9}, behaviour_max_failure_rate=0.35)
    untested = ModelScore("2", 0.9, {"a": 0.9})
    champion = ModelScore("1", 0.8, {"a": 0.8})
    assert decide_promotion(passing, champion, policy).promote
    refused = decide_promotion(failing, champion, policy)
    assert not refused.promote and "0.3500" in refused.reason and "max_behaviour_failure_rate" in refused.reason
    assert not decide_promotion(failing, None, policy).promote, "also for the first model"
    no_results = decide_promotion(untested, champion, policy)
    assert not no_results.promote and "no behavioural test results" in no_results.reason
    assert decide_promotion(untested, champion, PromotionPolicy()).promote, "1.0, the default, is no condition"


def test_the_documented_example_suite_is_valid() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    section = guide[guide.index("### Behavioural tests") :]
    example = section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]
    suite, _ = load_suite(example, ("Sports", "World"))
    assert [test.type for test in suite.tests] == ["mft", "inv"]
    assert len(expand_texts(suite.tests[0], [], 0)) == 8


def test_a_bad_suite_stops_the_run_before_training_and_a_file_travels_to_a_cluster_as_text(tmp_path: Path) -> None:
    from textclf.config import PipelineConfig
    from textclf.evaluate.behaviour import inline_spec

    with pytest.raises(ValidationError, match="existing YAML file"):
        PipelineConfig(checks={"behaviour_tests": str(tmp_path / "missing.yaml")})
    with pytest.raises(ValidationError, match="needs label"):
        PipelineConfig(checks={"behaviour_tests": "tests:\n  - {name: x, type: mft, texts: [a]}\n"})
    with pytest.raises(ValidationError, match="valid YAML"):
        PipelineConfig(checks={"behaviour_tests": "tests: [\n"})
    suite = tmp_path / "suite.yaml"
    suite.write_text("tests:\n  - {name: x, type: mft, texts: [a], label: positive}\n")
    assert PipelineConfig(checks={"behaviour_tests": str(suite)}).checks.behaviour_tests == str(suite)
    assert inline_spec(str(suite)) == suite.read_text()
    assert inline_spec("auto") == "auto" and inline_spec("sentiment") == "sentiment"
