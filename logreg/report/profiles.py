"""Performance profiles (Dolan and More 2002) and AlgoPerf's score, from times to a target.

A problem p (here: dataset x eps x device) is solved by method m (implementation x optimizer)
in time t[p, m] (inf when m never reached the target). Then

    r[p, m] = t[p, m] / min_m' t[p, m']          (1 for the fastest; inf when unsolved)
    rho_m(tau) = |{p : r[p, m] <= tau}| / |P|     (the fraction of problems m solves within
                                                   tau times the best method's time)
    score_m = 1 / (tau_max - 1) * integral_1^tau_max rho_m(tau) dtau   (AlgoPerf, tau_max = 4)

rho_m is a step function, so the integral is exact: each problem with r <= tau_max adds
(tau_max - max(r, 1)) / |P|. A problem no method solved counts in |P| and lowers everyone's rho.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

TAU_MAX = 4.0


def ratios(times: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """r[p][m] from t[p][m] (NaN or inf: not solved). A problem nobody solved has every r = inf."""
    out: dict[str, dict[str, float]] = {}
    for problem, by_method in times.items():
        solved = [t for t in by_method.values() if _solved(t)]
        best = min(solved) if solved else math.inf
        out[problem] = {
            m: (t / best if _solved(t) and best > 0 else (1.0 if _solved(t) else math.inf))
            for m, t in by_method.items()
        }
    return out


def _solved(t: float) -> bool:
    return t is not None and math.isfinite(t)


def rho(r: Mapping[str, Mapping[str, float]], method: str, tau: float) -> float:
    """The fraction of problems the method solves within tau times the best time."""
    if not r:
        return 0.0
    return sum(by_method.get(method, math.inf) <= tau for by_method in r.values()) / len(r)


def score(r: Mapping[str, Mapping[str, float]], method: str, tau_max: float = TAU_MAX) -> float:
    """AlgoPerf's score: the area under rho from 1 to tau_max, divided by tau_max - 1 (in [0, 1])."""
    if not r:
        return 0.0
    area = sum(
        tau_max - max(by_method.get(method, math.inf), 1.0)
        for by_method in r.values()
        if by_method.get(method, math.inf) <= tau_max
    )
    return area / (len(r) * (tau_max - 1.0))


def solved(r: Mapping[str, Mapping[str, float]], method: str) -> float:
    """The fraction of problems the method solves at all (finite r)."""
    if not r:
        return 0.0
    return sum(math.isfinite(by_method.get(method, math.inf)) for by_method in r.values()) / len(r)


def methods_of(r: Mapping[str, Mapping[str, float]]) -> list[str]:
    return sorted({m for by_method in r.values() for m in by_method})
