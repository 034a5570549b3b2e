"""User rules: accepted forms, rejected forms with clear messages, and a seeded fuzzer."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from alerts import RULE_SYMBOLS, RuleError, compile_rule

STATS = {name: 0.5 for name in RULE_SYMBOLS} | {"n": 10.0, "neg_count": 7.0, "neg_share": 0.7, "baseline_share": 0.2}


def test_the_issue_example_compiles_and_evaluates() -> None:
    rule = compile_rule("neg_share - baseline_share > 3*sqrt(baseline_share*(1-baseline_share)/n) and n >= 8")
    assert rule.symbols == ("baseline_share", "n", "neg_share")
    assert rule({"neg_share": 0.7, "baseline_share": 0.2, "n": 10}) is True
    assert rule({"neg_share": 0.3, "baseline_share": 0.2, "n": 10}) is False
    assert rule({"neg_share": 0.9, "baseline_share": 0.2, "n": 7}) is False


def test_functions_chained_comparisons_and_math_errors() -> None:
    assert compile_rule("0.1 < neg_share <= 0.7 and not p_value > 0.01")(STATS | {"p_value": 0.001})
    assert compile_rule("max(neg_share, baseline_share, 0.1) ** 2 >= 0.48 or abs(mean_score) > 2")(STATS)
    assert compile_rule("log(n) > 2 and exp(-n) < 1")(STATS)
    # a math domain error makes the condition false instead of raising
    assert compile_rule("sqrt(neg_share - 1) > 0")(STATS) is False


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("__import__('os').system('true') > 0", "call of 'Attribute' is not allowed"),
        ("__import__('os') > 0", "call of '__import__' is not allowed"),
        ("n.__class__ > 0", "Attribute is not allowed"),
        ("().__class__.__bases__[0] > n", "Subscript is not allowed"),
        ("open('x') > n", "call of 'open' is not allowed"),
        ("eval('1') > n", "call of 'eval' is not allowed"),
        ("x > 1", "unknown name 'x'"),
        ("'__dunder__' > n", "is not a number"),
        ("neg_share", "a condition (comparison) is expected"),
        ("n == 8", "comparison Eq is not allowed"),
        ("n ** n > 1", "exponent must be a number literal"),
        ("9 ** 9 ** 9 > n", "exponent must be a number literal"),
        ("1e400 > n", "out of range"),
        ("lambda: n", "Lambda is not allowed"),
        ("[n][0] > 1", "is not allowed"),
        ("(y := 1) > n", "NamedExpr is not allowed"),
        ("sqrt(n, base=2) > 1", "keyword arguments"),
        ("sqrt > 1", "is a function"),
        ("(n > 1) + 1 > 0", "a condition is used where a number is expected"),
        ("1 > 0", "always True"),
        ("n >", "not a valid expression"),
        ("", "non-empty"),
        ("n > 1 " + "+ 1 " * 300, "longer than"),
    ],
)
def test_rejected_at_load_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(RuleError, match=None) as info:
        compile_rule(text)
    assert fragment in str(info.value)


def test_config_load_rejects_a_bad_rule() -> None:
    from finsentry.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="unknown name 'os'"):
        load_settings(detector={"rules": ["os > 1"]})
    assert load_settings(detector={"rules": ["n >= 8"]}).detector.rules == ["n >= 8"]


_TOKENS = [
    "n", "neg_share", "baseline_share", "p_value", "sqrt", "log", "max", "abs", "(", ")", "+", "-", "*", "/",
    "**", "<", ">=", "and", "or", "not", "0.5", "2", "3", ",", ".", "__class__", "__import__", "'os'", "[", "]",
    "lambda", ":", "=", "==", "os", "system", "open", "exec", "x", "if", "else", "{", "}", "1e308", "@", "~",
]


def _random_text(rng: random.Random) -> str:
    """A well-formed condition, then 0-3 random token edits (insert, delete, replace)."""
    words = f"{_random_expr(rng)} {rng.choice(['<', '>=', '>'])} {_random_expr(rng)}".replace("(", " ( ").split()
    words = [w.replace(")", " ) ").strip() for w in words]
    tokens = " ".join(words).split()
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        i = rng.randrange(len(tokens) + 1)
        op = rng.choice(["insert", "delete", "replace"])
        if op == "insert" or not tokens:
            tokens.insert(i, rng.choice(_TOKENS))
        elif op == "delete":
            del tokens[min(i, len(tokens) - 1)]
        else:
            tokens[min(i, len(tokens) - 1)] = rng.choice(_TOKENS)
    return " ".join(tokens)


def _random_expr(rng: random.Random, depth: int = 0) -> str:
    """A random well-formed numeric expression over the rule language."""
    if depth > 3 or rng.random() < 0.3:
        return rng.choice(["n", "neg_share", "baseline_share", "mean_score", "0.5", "2", "3.25"])
    kind = rng.choice(["bin", "bin", "call", "neg", "pow"])
    if kind == "bin":
        return f"({_random_expr(rng, depth + 1)} {rng.choice('+-*/')} {_random_expr(rng, depth + 1)})"
    if kind == "call":
        fn = rng.choice(["sqrt", "abs", "exp", "log"])
        return f"{fn}({_random_expr(rng, depth + 1)})"
    if kind == "pow":
        return f"({_random_expr(rng, depth + 1)}) ** {rng.choice([2, 3, 0.5])}"
    return f"-({_random_expr(rng, depth + 1)})"


def _python_reference(expr: str, stats: dict[str, float]) -> bool | None:
    env = {"sqrt": math.sqrt, "abs": abs, "exp": math.exp, "log": math.log, **stats}
    try:
        return bool(eval(expr, {"__builtins__": {}}, env))  # the test's oracle only, on generated text
    except (ArithmeticError, ValueError, TypeError):
        return None


def test_fuzz_random_token_strings_never_execute_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = random.Random(20261129)
    accepted = 0
    for _ in range(3000):
        text = _random_text(rng)
        try:
            rule = compile_rule(text)
        except RuleError:
            continue
        accepted += 1
        assert set(rule.symbols) <= set(RULE_SYMBOLS)
        assert isinstance(rule(STATS), bool)
    for payload in ["__import__('os').system('touch pwned') > 0", "open('pwned','w') > 0",
                    "exec('open(\"pwned\",\"w\")') > 0", "().__class__.__base__.__subclasses__() > 0"]:
        with pytest.raises(RuleError):
            compile_rule(payload)
    assert not (tmp_path / "pwned").exists()
    assert accepted > 500  # the fuzzer reaches the accepting paths too


def test_fuzz_compiled_rules_agree_with_python_arithmetic() -> None:
    rng = random.Random(7)
    compared = 0
    for _ in range(300):
        expr = f"{_random_expr(rng)} > {_random_expr(rng)}"
        stats = {"n": float(rng.randint(1, 50)), "neg_share": rng.random(), "baseline_share": rng.random(),
                 "mean_score": rng.uniform(-1, 1)}
        try:
            rule = compile_rule(expr)
        except RuleError as exc:
            # among well-formed ones only constant or non-real (e.g. log of a negative constant) are refused
            assert "always" in str(exc) or "non-real" in str(exc)
            continue
        expected = _python_reference(expr, stats)
        if expected is None:
            continue  # a math error: the rule is false then (tested above), Python raises
        got = rule(stats)
        if got != expected:  # allow float rounding only when the two sides are within 1e-9 of each other
            lhs, rhs = expr.split(" > ", 1) if expr.count(" > ") == 1 else (None, None)
            assert lhs is not None
            env = {"sqrt": math.sqrt, "abs": abs, "exp": math.exp, "log": math.log, **stats}
            a, b = (eval(side, {"__builtins__": {}}, env) for side in (lhs, rhs))
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), expr
        compared += 1
    assert compared > 100
