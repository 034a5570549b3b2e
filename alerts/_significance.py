"""Significance and effect size of a window's negative count against a baseline share.

Formulas (all pure ``math``, no SciPy):

* **Exact one-sided binomial test** (Clopper & Pearson 1934; e.g. Agresti,
  *Categorical Data Analysis*, 3rd ed., 2013, §1.4): with ``k`` negative
  items out of ``n`` and a baseline share ``p0``, the p-value is the upper
  tail ``P(X >= k)`` for ``X ~ Binomial(n, p0)``::

      p = sum_{i=k}^{n} C(n, i) p0^i (1 - p0)^(n - i)

  summed in log space (``math.lgamma``) so that large ``n`` do not overflow.
* **Wilson score interval lower bound** (Wilson 1927, *JASA* 22:209-212)::

      (p̂ + z²/2n - z sqrt(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n)

* **Cohen's h** effect size for two proportions (Cohen 1988, *Statistical
  Power Analysis for the Behavioral Sciences*, §6.2)::

      h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0))

  with Cohen's conventional bounds 0.2 (small), 0.5 (medium), 0.8 (large).
"""

from __future__ import annotations

import math

__all__ = ["binomial_pmf", "binomial_sf", "cohens_h", "severity_for", "wilson_lower_bound"]


def _log_pmf(i: int, n: int, log_p: float, log_q: float) -> float:
    log_comb = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
    return log_comb + i * log_p + (n - i) * log_q


def binomial_pmf(k: int, n: int, p0: float) -> float:
    """``P(X = k)`` for ``X ~ Binomial(n, p0)``, with ``0 <= k <= n`` and ``p0`` in (0, 1) (not checked).

    The first term of ``binomial_sf(k, n, p0)``, so a lower bound of it.
    """
    return math.exp(_log_pmf(k, n, math.log(p0), math.log1p(-p0)))


def binomial_sf(k: int, n: int, p0: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p0)``: the one-sided p-value of k successes.

    Args:
        k: observed successes (negative items), 0 <= k <= n.
        n: trials (items in the window), >= 0.
        p0: success probability under the null (the baseline share), in [0, 1].

    Returns:
        The upper-tail probability in [0, 1]; 1.0 when ``k <= 0``.

    Raises:
        ValueError: when ``k > n``, ``n < 0`` or ``p0`` is outside [0, 1].
    """
    if n < 0 or k > n or not 0.0 <= p0 <= 1.0:
        raise ValueError(f"need 0 <= k <= n and p0 in [0, 1], got k={k}, n={n}, p0={p0}")
    if k <= 0:
        return 1.0
    if p0 == 0.0:
        return 0.0
    if p0 == 1.0:
        return 1.0
    log_p, log_q = math.log(p0), math.log1p(-p0)
    logs = [_log_pmf(i, n, log_p, log_q) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * math.fsum(math.exp(v - top) for v in logs))


def wilson_lower_bound(k: int, n: int, z: float = 1.959963984540054) -> float:
    """Lower bound of the Wilson score interval of the proportion ``k / n``.

    Args:
        k: successes, 0 <= k <= n.
        n: trials; 0 gives 0.0.
        z: the standard-normal quantile (default: two-sided 95 %).

    Raises:
        ValueError: when ``k`` is outside ``[0, n]``.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0
    p = k / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


def cohens_h(p1: float, p0: float) -> float:
    """Cohen's h between an observed share ``p1`` and a baseline share ``p0`` (both in [0, 1])."""
    return 2.0 * math.asin(math.sqrt(p1)) - 2.0 * math.asin(math.sqrt(p0))


def severity_for(h: float) -> str:
    """Severity from Cohen's h: ``critical`` (h >= 0.8, large), ``warning`` (>= 0.5), else ``info``."""
    if h >= 0.8:
        return "critical"
    if h >= 0.5:
        return "warning"
    return "info"
