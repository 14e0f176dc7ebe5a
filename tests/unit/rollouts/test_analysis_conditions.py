"""The condition language: what Argo Rollouts' examples write, in expr's spelling."""

from __future__ import annotations

import math

import pytest

from gitmoor.rollouts.conditions import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    ConditionError,
    evaluate,
    evaluate_result,
    translate,
)


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        ("result[0] >= 0.95", [0.97], True),
        ("result[0] >= 0.95", [0.9], False),
        ("result.ok == true", {"ok": True}, True),
        ("result.ok == true", {"ok": False}, False),
        ("len(result) > 0", [1.0], True),
        ("len(result) > 0", [], False),
        ('result == "ok"', "ok", True),
        ("result > 0.5 && result < 2", 1, True),
        ("result > 0.5 && result < 2", 3, False),
        ("result < 0.5 || result > 2", 3, True),
        ("!(result > 2)", 3, False),
        ("result != 2", 3, True),
        ("not (result > 2) or result == 3", 3, True),
        ("result > 1 and result < 5", 3, True),
        ("isNaN(result)", math.nan, True),
        ("isNaN(result) || result >= 0.95", 0.99, True),
        ("isInf(result)", math.inf, True),
        ("asInt(result) == 42", "42", True),
        ("asFloat(result) > 0.5", "0.75", True),
        ("default(result, 0) > 1", None, False),
        ("default(result, 5) > 1", None, True),
        ("result == nil", None, True),
        ("isNil(result)", None, True),
        (
            "result.data.rate >= 0.9 && result.data.errors == 0",
            {"data": {"rate": 0.95, "errors": 0}},
            True,
        ),
        ('result == "a && b"', "a && b", True),
        ('result == "!x"', "!x", True),
        (
            "(result.requests_made * result.requests_succeeded / 100) >= 90",
            {"requests_made": 100, "requests_succeeded": 95},
            True,
        ),
    ],
)
def test_examples_evaluate_as_upstream(condition: str, result: object, expected: bool) -> None:
    assert evaluate(condition, result) is expected


def test_translation_leaves_string_literals_alone() -> None:
    assert translate('result == "x || y" && !false') == 'result == "x || y"  and   not false'


@pytest.mark.parametrize("bad", ["result >= ", "result[0 >= 1", "result === 1", "&& result"])
def test_a_condition_that_does_not_parse_is_an_error_naming_it(bad: str) -> None:
    with pytest.raises(ConditionError) as e:
        evaluate(bad, 1)
    assert bad in str(e.value)


def test_no_eval_no_builtins_no_dunders() -> None:
    for dangerous in ("__import__('os').system('true')", "result.__class__", "open('/etc/passwd')"):
        with pytest.raises(ConditionError):
            evaluate(dangerous, {"a": 1})


def test_a_result_that_is_not_boolean_is_an_error() -> None:
    with pytest.raises(ConditionError, match="expected bool"):
        evaluate("result + 1", 1)


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        ("", "", 1, SUCCESSFUL),  # neither condition: success unless error
        ("result > 1", "", 2, SUCCESSFUL),
        ("result > 1", "", 1, FAILED),  # only success given: not success fails
        ("", "result > 1", 2, FAILED),  # only failure given
        ("", "result > 1", 1, SUCCESSFUL),
        ("result > 5", "result < 1", 3, INCONCLUSIVE),  # neither true
        ("result > 5", "result < 1", 0, FAILED),
        ("result > 5", "result < 1", 9, SUCCESSFUL),
        ("result > 5", "result > 1", 9, FAILED),  # both true: failure wins
    ],
)
def test_evaluate_result_follows_upstream_rules(
    success: str, failure: str, result: object, phase: str
) -> None:
    assert evaluate_result(result, success, failure) == (phase, "")


def test_evaluate_result_on_empty_data_says_so() -> None:
    phase, message = evaluate_result([], "result[0] >= 0.95", "")
    assert phase == ERROR
    assert message == (
        'could not evaluate successCondition "result[0] >= 0.95": '
        "metric result is nil or empty: no data returned from the metric provider"
    )


def test_evaluate_result_names_a_condition_that_does_not_parse() -> None:
    phase, message = evaluate_result([1.0], "result[0] >=", "")
    assert phase == ERROR
    assert "successCondition" in message and "result[0] >=" in message


@pytest.mark.parametrize(
    "condition",
    [
        # list repetition: gigabytes from a short condition
        "len(string([[0] * 100000] * 100000)) > 0",
        # comprehensions are not expr syntax and loop over what they build
        "len([[0] * 100000 for x in [0] * 10000]) > 0",
    ],
)
def test_a_pathological_condition_errors_instead_of_hogging_the_controller(
    condition: str,
) -> None:
    phase, message = evaluate_result([1.0], condition, "")
    assert phase == ERROR
    assert message


def test_power_is_float_arithmetic_as_in_expr() -> None:
    assert evaluate("2 ** 10 == 1024", None)
    assert evaluate("10 ** 400 > 1", None)  # +Inf, as Go's math.Pow
    # Python's exact integer power would take minutes of the controller's loop here
    assert evaluate("4000000 ** 4000000 > 0", None)
    assert evaluate("result[0] * 100 >= 95", [0.99])
