"""User alert rules: math conditions over window statistics, compiled with SymPy.

A rule is a Python-syntax condition such as::

    neg_share - baseline_share > 3*sqrt(baseline_share*(1-baseline_share)/n) and n >= 8

How it is made safe (no ``eval``, no ``sympy.parse_expr``, which evaluates
Python): the text is parsed by :func:`ast.parse` in ``eval`` mode and every
node is checked against a whitelist; the SymPy expression is then *built*
from the checked tree node by node (numbers become ``sympy.Float``, names
become the known ``sympy.Symbol`` objects, calls become the whitelisted SymPy
functions), and compiled with ``sympy.lambdify(..., modules="math")``.
Anything else -- attribute access, subscripts, strings, names outside
``RULE_SYMBOLS`` and ``RULE_FUNCTIONS``, keyword arguments, lambdas,
comprehensions, walrus -- raises :class:`RuleError` at config load.

Limits: at most ``MAX_RULE_CHARS`` characters and ``MAX_RULE_NODES`` syntax
nodes; exponents must be number literals with ``|e| <= 16``; number literals
must satisfy ``|c| <= 1e12``. The result must be a condition (comparison,
``and``/``or``/``not`` of comparisons).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sympy

__all__ = ["MAX_RULE_CHARS", "MAX_RULE_NODES", "RULE_FUNCTIONS", "RULE_SYMBOLS", "Rule", "RuleError", "compile_rule"]

#: Window statistics a rule may use (see ``alerts.WindowResult`` and ``docs/detector.md``).
RULE_SYMBOLS: tuple[str, ...] = (
    "n",  # distinct items in the window
    "neg_count",  # negative items
    "neu_count",
    "pos_count",
    "neg_share",  # neg_count / n
    "mean_score",  # mean of p_positive - p_negative
    "baseline_share",  # the key's EWMA negative share
    "baseline_std",  # the key's EWMA standard deviation of the share
    "p_value",  # exact one-sided binomial p-value of neg_count vs baseline_share
    "effect_size",  # Cohen's h of neg_share vs baseline_share
    "window_minutes",  # window length
)

_SYMBOLS: dict[str, sympy.Symbol] = {name: sympy.Symbol(name, real=True) for name in RULE_SYMBOLS}

#: Functions a rule may call, with their SymPy counterparts.
RULE_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "sqrt": sympy.sqrt,
    "log": sympy.log,
    "exp": sympy.exp,
    "abs": sympy.Abs,
    "min": sympy.Min,
    "max": sympy.Max,
    "asin": sympy.asin,
}
_ARITY = {"sqrt": (1, 1), "log": (1, 1), "exp": (1, 1), "abs": (1, 1), "asin": (1, 1), "min": (2, 8), "max": (2, 8)}

MAX_RULE_CHARS = 500
MAX_RULE_NODES = 200
_MAX_CONST = 1e12
_MAX_EXPONENT = 16

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: sympy.Lt,
    ast.LtE: sympy.Le,
    ast.Gt: sympy.Gt,
    ast.GtE: sympy.Ge,
}


_CONDITIONS = (sympy.core.relational.Relational, sympy.logic.boolalg.BooleanFunction, sympy.logic.boolalg.BooleanAtom)


class RuleError(ValueError):
    """A rule that is not accepted; the message names the rule and the reason."""


@dataclass(frozen=True)
class Rule:
    """A compiled rule.

    Attributes:
        text: the rule as written (goes into the alert's ``rule`` string).
        expr: the SymPy condition.
        symbols: the statistics it uses, sorted.
    """

    text: str
    expr: Any
    symbols: tuple[str, ...]
    _fn: Callable[..., Any]

    def __call__(self, stats: Mapping[str, float]) -> bool:
        """Evaluate on window statistics (every name in ``symbols`` must be present).

        A math error (square root of a negative, division by zero, overflow)
        makes the condition false rather than raising.

        Raises:
            KeyError: a statistic the rule uses is missing from ``stats``.
        """
        args = [float(stats[name]) for name in self.symbols]
        try:
            return bool(self._fn(*args))
        except (ArithmeticError, ValueError, TypeError):
            return False


def _reject(text: str, why: str) -> RuleError:
    return RuleError(f"rule {text!r} rejected: {why}")


class _Builder:
    """Builds a SymPy expression from a whitelisted Python AST."""

    def __init__(self, text: str) -> None:
        self.text = text

    def build(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _reject(self.text, f"{type(node).__name__} is not allowed (only numbers, known names, "
                          "+ - * / **, comparisons, and/or/not, and calls of " + ", ".join(RULE_FUNCTIONS) + ")")
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _reject(self.text, f"literal {v!r} is not a number")
        if abs(v) > _MAX_CONST or not math.isfinite(v):
            raise _reject(self.text, f"number {v!r} is out of range (|c| <= {_MAX_CONST:g})")
        return sympy.Float(float(v))

    def _Name(self, node: ast.Name) -> Any:
        if node.id in _SYMBOLS:
            return _SYMBOLS[node.id]
        if node.id in RULE_FUNCTIONS:
            raise _reject(self.text, f"{node.id!r} is a function: call it, e.g. {node.id}(x)")
        raise _reject(self.text, f"unknown name {node.id!r}; known: {', '.join(RULE_SYMBOLS)}")

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            return sympy.Not(self._condition(operand))
        raise _reject(self.text, f"operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.op, ast.Pow):
            if not isinstance(right, sympy.Float) or abs(float(right)) > _MAX_EXPONENT:
                raise _reject(self.text, f"an exponent must be a number literal with |e| <= {_MAX_EXPONENT}")
            return self._number(left) ** right
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise _reject(self.text, f"operator {type(node.op).__name__} is not allowed")
        return op(self._number(left), self._number(right))

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        parts = [self._condition(self.build(v)) for v in node.values]
        return sympy.And(*parts) if isinstance(node.op, ast.And) else sympy.Or(*parts)

    def _Compare(self, node: ast.Compare) -> Any:
        terms = [self._number(self.build(node.left))] + [self._number(self.build(c)) for c in node.comparators]
        parts = []
        for op, a, b in zip(node.ops, terms, terms[1:]):
            rel = _COMPARE.get(type(op))
            if rel is None:
                raise _reject(self.text, f"comparison {type(op).__name__} is not allowed (use < <= > >=)")
            parts.append(rel(a, b))
        return sympy.And(*parts)

    def _Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in RULE_FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise _reject(self.text, f"call of {name!r} is not allowed; functions: {', '.join(RULE_FUNCTIONS)}")
        if node.keywords:
            raise _reject(self.text, "keyword arguments are not allowed")
        lo, hi = _ARITY[node.func.id]
        if not lo <= len(node.args) <= hi:
            raise _reject(self.text, f"{node.func.id} takes {lo}..{hi} arguments, got {len(node.args)}")
        args = [self._number(self.build(a)) for a in node.args]
        return RULE_FUNCTIONS[node.func.id](*args)

    def _number(self, value: Any) -> Any:
        if not isinstance(value, sympy.Expr):
            raise _reject(self.text, "a condition is used where a number is expected")
        return value

    def _condition(self, value: Any) -> Any:
        if isinstance(value, sympy.Expr) or not isinstance(value, _CONDITIONS):
            raise _reject(self.text, "a number is used where a condition (comparison) is expected")
        return value


def compile_rule(text: str) -> Rule:
    """Parse, check and compile one rule.

    Args:
        text: the condition, Python syntax, see the module docstring.

    Returns:
        The compiled :class:`Rule`.

    Raises:
        RuleError: empty, too long, a syntax error, a disallowed construct or
            name, or not a condition; the message says which.
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError("a rule must be a non-empty string")
    if len(text) > MAX_RULE_CHARS:
        raise _reject(text[:40] + "...", f"longer than {MAX_RULE_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        raise _reject(text, f"not a valid expression ({exc.__class__.__name__}: {getattr(exc, 'msg', exc)})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_RULE_NODES:
        raise _reject(text, f"more than {MAX_RULE_NODES} syntax nodes")
    builder = _Builder(text)
    try:
        expr = builder._condition(builder.build(tree.body))
    except RuleError:
        raise
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:  # SymPy refusing, e.g. complex constants
        raise _reject(text, f"cannot be built ({type(exc).__name__}: {exc})") from None
    if expr in (sympy.true, sympy.false):
        raise _reject(text, f"the condition is always {bool(expr)}")
    names = tuple(sorted(str(s) for s in expr.free_symbols))
    fn = sympy.lambdify([_SYMBOLS[n] for n in names], expr, modules="math")
    return Rule(text=text.strip(), expr=expr, symbols=names, _fn=fn)
