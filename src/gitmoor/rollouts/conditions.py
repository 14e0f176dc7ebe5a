"""A metric's ``successCondition`` / ``failureCondition``, evaluated safely.

Argo Rollouts evaluates these with expr-lang (``utils/evaluate``): the
variable ``result`` is the measured value, and ``asInt``, ``asFloat``,
``isNaN``, ``isInf``, ``isNil`` and ``default`` are in scope. gitmoor
evaluates them with simpleeval, a maintained expression library that walks
Python's AST with a whitelist of node types, operators and functions (never
``eval``). expr's spelling differs from Python's in a few operators, so a
condition is first translated token by token, outside string literals:

    expr          Python
    &&  ||  !     and  or  not   (``!=`` stays)
    true false nil  → names bound to True, False, None

What the Argo Rollouts examples write then works unchanged:
``result[0] >= 0.95``, ``result.ok == true`` (simpleeval reads a dict key
as an attribute), ``len(result) > 0``, ``result == "ok"``,
``isNaN(result) || result < 0.05``, ``default(result, 0) > 1``.

A condition that does not parse is a :class:`ConditionError` naming it; the
state machine records it as an Error measurement, as upstream records an
expr compile error.
"""

from __future__ import annotations

import ast
import math
from typing import Any

import simpleeval  # type: ignore[import-untyped]

from gitmoor.model import UserInputError

SUCCESSFUL = "Successful"
FAILED = "Failed"
INCONCLUSIVE = "Inconclusive"
ERROR = "Error"


class ConditionError(UserInputError):
    """A condition that cannot be parsed or evaluated against the result."""


def translate(condition: str) -> str:
    """expr's boolean operators and literals spelled as Python's."""
    out: list[str] = []
    i = 0
    n = len(condition)
    while i < n:
        c = condition[i]
        if c in "\"'`":
            # A string literal passes through untouched (backquotes are expr's raw
            # strings; Python has none, so they become a repr'd literal).
            j = i + 1
            while j < n and condition[j] != c:
                j += 2 if condition[j] == "\\" and c != "`" else 1
            literal = condition[i : j + 1]
            out.append(repr(literal[1:-1]) if c == "`" else literal)
            i = j + 1
            continue
        two = condition[i : i + 2]
        if two == "&&":
            out.append(" and ")
            i += 2
        elif two == "||":
            out.append(" or ")
            i += 2
        elif c == "!" and two != "!=":
            out.append(" not ")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out).strip()


def _is_nil(value: Any) -> bool:
    return value is None


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ConditionError(f"asInt() not supported on bool {value}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value, 10)
        except ValueError as e:
            raise ConditionError(f"asInt() cannot parse {value!r}") from e
    raise ConditionError(f"asInt() not supported on {type(value).__name__} {value!r}")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ConditionError(f"asFloat() not supported on bool {value}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError as e:
            raise ConditionError(f"asFloat() cannot parse {value!r}") from e
    raise ConditionError(f"asFloat() not supported on {type(value).__name__} {value!r}")


def _number(value: Any, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConditionError(f"{fn}() wants a number, got {type(value).__name__} {value!r}")
    return float(value)


def _functions(result: Any) -> dict[str, Any]:
    def default(_value: Any, fallback: Any) -> Any:
        # upstream's default() looks at the measured result itself, whatever the
        # first argument says (``default(result, 0)`` is how it is written)
        return fallback if result is None else result

    return {
        "len": len,
        "abs": abs,
        "min": min,
        "max": max,
        "int": int,
        "float": float,
        "string": str,
        "asInt": _as_int,
        "asFloat": _as_float,
        "isNaN": lambda v: math.isnan(_number(v, "isNaN")),
        "isInf": lambda v: math.isinf(_number(v, "isInf")),
        "isNil": lambda _v: result is None,
        "default": default,
    }


def _power(a: Any, b: Any) -> float:
    """expr's ``**`` is float64 arithmetic (``math.Pow``): an overflow is ±Inf,
    a domain error NaN. Python's exact integer power would let a short condition
    such as ``4000000 ** 4000000`` hold the controller's event loop for minutes."""
    x, y = _number(a, "**"), _number(b, "**")
    try:
        return math.pow(x, y)
    except OverflowError:
        odd = y.is_integer() and int(y) % 2 == 1
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        return math.nan


def _multiply(a: Any, b: Any) -> Any:
    """Numbers only, as in expr (whose ``repeat()`` repeats a string): repeating
    a list or string would let a short condition build gigabytes
    (``string([[0] * 100000] * 100000)``)."""
    _number(a, "*")
    _number(b, "*")
    return a * b


_OPERATORS = {
    **{
        k: v
        for k, v in simpleeval.DEFAULT_OPERATORS.items()
        # bitwise operators are not expr's (``^`` is power there): refuse, not misread
        if k not in (ast.BitXor, ast.BitOr, ast.BitAnd, ast.Invert, ast.LShift, ast.RShift)
    },
    ast.Pow: _power,
    ast.Mult: _multiply,
}

#: Python syntax with no expr counterpart that would let a condition loop over
#: data it builds itself (simpleeval allows comprehensions)
_REFUSED = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda)


def _evaluator(result: Any) -> simpleeval.EvalWithCompoundTypes:
    return simpleeval.EvalWithCompoundTypes(
        operators=_OPERATORS,
        functions=_functions(result),
        names={"result": result, "true": True, "false": False, "nil": None},
    )


def check(condition: str) -> None:
    """Raise :class:`ConditionError` if ``condition`` does not parse."""
    try:
        tree = ast.parse(translate(condition), mode="eval")
    except SyntaxError as e:
        raise ConditionError(
            f"condition {condition!r} does not parse: {e.msg}", concerns=condition
        ) from e
    for node in ast.walk(tree):
        if isinstance(node, _REFUSED):
            raise ConditionError(
                f"condition {condition!r} does not parse: "
                f"{type(node).__name__} is not part of the condition language",
                concerns=condition,
            )


def evaluate(condition: str, result: Any) -> bool:
    """The condition's value for ``result``; it must be a boolean (as upstream)."""
    check(condition)
    try:
        value = _evaluator(result).eval(translate(condition))
    except ConditionError:
        raise
    except Exception as e:  # simpleeval raises many kinds: all mean "cannot evaluate"
        raise ConditionError(f"{type(e).__name__}: {e}", concerns=condition) from e
    if not isinstance(value, bool):
        raise ConditionError(f"expected bool, but got {type(value).__name__}", concerns=condition)
    return value


def evaluate_result(result: Any, success: str, failure: str) -> tuple[str, str]:
    """(phase, error message) of one measurement, by Argo Rollouts' rules
    (``evaluate.EvaluateResult``):

    - neither condition: Successful (unless the measurement itself errored);
    - only ``successCondition``: not true → Failed;
    - only ``failureCondition``: true → Failed, else Successful;
    - both: failure true → Failed; success true → Successful; neither → Inconclusive.
    """
    succeeded = failed = False
    for which, text in (("successCondition", success), ("failureCondition", failure)):
        if not text:
            continue
        try:
            check(text)
        except ConditionError as e:
            return ERROR, f"{which} {e.message}"
        try:
            value = evaluate(text, result)
        except ConditionError as e:
            if result is None or (isinstance(result, list) and not result):
                why = "metric result is nil or empty: no data returned from the metric provider"
            else:
                why = e.message
            return ERROR, f'could not evaluate {which} "{text}": {why}'
        if which == "successCondition":
            succeeded = value
        else:
            failed = value
    if not success and not failure:
        return SUCCESSFUL, ""
    if success and not failure:
        failed = not succeeded
    elif failure and not success:
        succeeded = not failed
    if failed:
        return FAILED, ""
    if not succeeded:
        return INCONCLUSIVE, ""
    return SUCCESSFUL, ""
