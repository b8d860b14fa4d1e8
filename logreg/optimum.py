"""F*: the exact minimum of the training objective, by a solver independent of the implementations.

The implementations minimise (logreg/impls/numpy_impl.py, logreg/optim.py)

    F(W, b) = mean_i loss_i(X_i W + b) + weight_decay / 2 * ||W||^2

with the coupled L2 on the weights, never the bias (its gradient is weight_decay * W), and
loss_i the binary cross-entropy of sigmoid (one logit), the cross-entropy of softmax (K logits)
or the squared error (model 'linear', the MSE, not half of it). F* is computed here in float64
from the same training rows (a float32 split is upcast exactly):

- logistic: Newton's method with the exact gradient and Hessian (binary: the (d+1)^2 matrix and
  a backtracking line search; softmax, and sparse X of any head: scipy's trust-ncg (Newton-CG
  in a trust region) with exact Hessian-vector products, which never form a d x d matrix)
  until the gradient's norm is below GTOL, i.e. F - F* below about 1e-12 relative; scipy's
  L-BFGS-B first if Newton ever stalls (it has not on the built-in datasets);
- linear: the closed form (normal equations with the ridge term, numpy.linalg.lstsq without;
  sparse X: LSQR on X centred implicitly);
- mlp: none. The loss is not convex: there is no F* to measure against.

Without weight decay, linearly separable classes have no finite optimum (the loss keeps
falling as ||W|| grows). A linear programme detects a direction along which every margin grows;
F* is then NaN with the message saying so, never a made-up value.

Results are cached in memory per (dataset digest, model, weight decay): a sweep computes each
once per process; a new weight decay starts from the nearest cached optimum of the same data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy import sparse

GTOL = 1e-11  # gradient norm at which the Newton polish stops
TOLERANCE = 1e-12  # relative accuracy of F* that GTOL gives on the built-in datasets


@dataclass(frozen=True)
class Optimum:
    """F* of one (dataset, model, weight decay), and how it was found."""

    value: float
    """F*, the minimum of the objective; NaN when there is none (see `message`)."""
    solver: str
    tolerance: float
    """Relative accuracy asked of `value`."""
    seconds: float
    message: str = ""
    W: np.ndarray | None = None
    """The minimiser (d, k) and its bias (k,), float64; None when there is none."""
    b: np.ndarray | None = None
    evaluations: int = 0
    """How many times the solver evaluated F and its gradient (0: closed form, or none needed)."""

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)


def _float64(X):
    """X in float64: a dense array, or a scipy CSR matrix kept sparse."""
    if sparse.issparse(X):
        return sparse.csr_array(X, dtype=np.float64)
    return np.asarray(X, dtype=np.float64)


def objective(X, y, W, b, weight_decay: float, head: str) -> float:
    """F(W, b) in float64: the mean loss of the head plus weight_decay / 2 * ||W||^2."""
    X = _float64(X)
    W, b = np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)
    Z = X @ W + b
    loss = float(np.mean((Z[:, 0] - y) ** 2)) if head == "regression" else mean_log_loss(Z, np.asarray(y))
    return loss + 0.5 * weight_decay * float(np.sum(W * W))


def mean_log_loss(Z, y) -> float:
    """The mean cross-entropy of logits Z (n, 1: sigmoid; n, K: softmax) for labels y, in float64.

    Written without cancellation: log(1 + exp(z)) - y z = softplus(+-z), and softmax's
    log(sum_c exp(Z_c)) - Z_y = log1p(sum_{c != y} exp(Z_c - Z_y)) when y is the largest logit.
    The textbook forms lose ~|z| * 1e-16 per row, which near separable data (a mean loss of
    1e-4 with |z| ~ 16) is 1e-11 of F: more than F*'s tolerance.
    """
    n = len(y)
    if Z.shape[1] == 1:
        return float(np.mean(np.logaddexp(0.0, np.where(y == 1, -Z[:, 0], Z[:, 0]))))
    D = Z - Z[np.arange(n), y][:, None]  # D_y = 0
    D[np.arange(n), y] = -np.inf  # the other classes only
    m = np.maximum(D.max(axis=1), 0.0)
    s = np.exp(D - m[:, None]).sum(axis=1)  # sum_{c != y} exp(D_c - m)
    # m = 0 (y has the largest logit): log1p(s); else m + log(exp(-m) + s), with no cancellation.
    return float(np.mean(np.where(m == 0.0, np.log1p(s), m + np.log(np.exp(-m) + s))))


# -- logistic: value, gradient, Hessian (or Hessian-vector products) of F in theta = [W; b]


class _Logistic:
    """F of theta = vec([W; b]) ((d+1) x k, row-major) for a binary or softmax head.

    Dense X gets its column of ones (X1 = [X, 1]); sparse X (CSR) stays as it is and the bias
    is added apart, so nothing n x d is ever dense."""

    def __init__(self, X, y, n_classes: int, weight_decay: float):
        n, d = X.shape
        self.sparse = sparse.issparse(X)
        if self.sparse:
            self.X = _float64(X)
            self.X.sort_indices()
            self.X1 = None
        else:
            self.X1 = np.hstack([np.asarray(X, dtype=np.float64), np.ones((n, 1))])
        self.k = 1 if n_classes <= 2 else n_classes
        self.n, self.d, self.wd = n, d, weight_decay
        self.y = np.asarray(y)
        if self.k == 1:
            self.Y = self.y.astype(np.float64)[:, None]
        else:
            self.Y = np.zeros((n, self.k))
            self.Y[np.arange(n), self.y] = 1.0
        self.mask = np.ones((d + 1, self.k))
        self.mask[d] = 0.0  # no decay on the bias row
        self._at, self._P = None, None  # the point of the last Hessian-vector product, its P
        self.evaluations = 0  # of value_grad

    def _theta(self, t):
        return t.reshape(self.d + 1, self.k)

    def forward(self, T):
        """[X, 1] T: (n, k)."""
        if self.sparse:
            return self.X @ T[:-1] + T[-1]
        return self.X1 @ T

    def backward(self, R):
        """[X, 1]^T R: (d + 1, k)."""
        if self.sparse:
            return np.vstack([self.X.T @ R, R.sum(axis=0, keepdims=True)])
        return self.X1.T @ R

    def rows(self):
        """[X, 1] as a matrix (sparse stays sparse), for the linear programme."""
        if self.sparse:
            return sparse.hstack([self.X, sparse.csr_array(np.ones((self.n, 1)))], format="csr")
        return self.X1

    def probs(self, T):
        Z = self.forward(T)
        if self.k == 1:
            return 0.5 * (1.0 + np.tanh(0.5 * Z)), Z
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True), Z

    def value_grad(self, t):
        self.evaluations += 1
        T = self._theta(t)
        P, Z = self.probs(T)
        loss = mean_log_loss(Z, self.y)
        TW = T * self.mask
        f = loss + 0.5 * self.wd * float(np.sum(TW * TW))
        G = self.backward(P - self.Y) / self.n + self.wd * TW
        return float(f), G.ravel()

    def hess(self, t):
        """Binary head only: X1^T diag(p (1 - p)) X1 / n + wd I (bias excluded)."""
        p = self.probs(self._theta(t))[0][:, 0]
        H = (self.X1.T * (p * (1 - p))) @ self.X1 / self.n
        H[np.diag_indices_from(H)] += self.wd * self.mask[:, 0]
        return H

    def hessp(self, t, v):
        """Exact H v: X1^T (P * (U - rowsum(P * U))) / n + wd V for softmax, with U = X1 V;
        X1^T (p (1 - p) U) / n + wd V for the binary head."""
        # The solver asks for many products at one point: P is computed once per point.
        if self._at is None or not np.array_equal(self._at, t):
            self._at, self._P = np.array(t, copy=True), self.probs(self._theta(t))[0]
        P = self._P
        V = self._theta(v)
        U = self.forward(V)
        R = P * (1 - P) * U if self.k == 1 else P * (U - (P * U).sum(axis=1, keepdims=True))
        return (self.backward(R) / self.n + self.wd * V * self.mask).ravel()


def _closer(val: float, g, new_val: float, new_g) -> bool:
    """A step that does not raise F beyond rounding and shrinks the gradient.

    Near the optimum F's changes are below its rounding error, so comparing values alone would
    reject the full Newton step by one ulp, then accept a tiny step that lowers F by noise, and
    loop (100 iterations of 25 halvings, seen on 'hours'); the gradient still tells progress.
    """
    return new_val <= val + 8 * np.finfo(float).eps * abs(val) and np.linalg.norm(new_g) < np.linalg.norm(g)


def _newton_binary(f: _Logistic, t, max_iter: int = 100):
    """Damped Newton with the exact Hessian and a backtracking line search."""
    val, g = f.value_grad(t)
    for _ in range(max_iter):
        if np.linalg.norm(g) < GTOL:
            break
        H = f.hess(t)
        # The least-norm step: collinear features (make_classification's redundant ones) make
        # H singular without decay, and a plain solve would wander along its null space.
        step = np.linalg.lstsq(H, g, rcond=1e-13)[0]
        a = 1.0
        while a > 1e-12:
            new_val, new_g = f.value_grad(t - a * step)
            if new_val <= val - 1e-4 * a * float(g @ step) or _closer(val, g, new_val, new_g):
                break
            a *= 0.5
        else:
            break
        t, val, g = t - a * step, new_val, new_g
    return t, val, g


def _no_finite_optimum(f: _Logistic) -> bool:
    """Whether a direction V raises every margin without lowering any (the classes are separable).

    Along such a direction the unregularised loss decreases for ever, so it has no minimiser.
    LP: maximise the sum of margins subject to margins >= 0 and -1 <= V <= 1.
    """
    from scipy.optimize import linprog

    X1, n, k = f.rows(), f.n, f.k
    if k == 1:
        s = np.where(f.y == 1, 1.0, -1.0)
        A = sparse.diags_array(s) @ X1 if f.sparse else s[:, None] * X1  # margins s_i x_i . v
    elif f.sparse:
        rows = []
        for c in range(k):
            idx = np.flatnonzero(f.y != c)
            Xc = X1[idx]
            # Block j of V: +x_i where j = y_i, -x_i where j = c.
            coef = (f.y[idx][:, None] == np.arange(k)).astype(float) - (np.arange(k) == c)
            rows.append(sparse.hstack([sparse.diags_array(coef[:, j]) @ Xc for j in range(k)]))
        A = sparse.vstack(rows, format="csr")
    else:
        rows = []
        for c in range(k):
            # margin_{i,c} = (V_{y_i} - V_c) . x_i for c != y_i; V flattened class-major.
            idx = np.flatnonzero(f.y != c)
            M = np.zeros((len(idx), k * (f.d + 1)))
            for j, i in enumerate(idx):
                M[j, f.y[i] * (f.d + 1) : (f.y[i] + 1) * (f.d + 1)] += X1[i]
                M[j, c * (f.d + 1) : (c + 1) * (f.d + 1)] -= X1[i]
            rows.append(M)
        A = np.vstack(rows)
    c = -np.asarray(A.sum(axis=0)).ravel()
    res = linprog(c, A_ub=-A, b_ub=np.zeros(A.shape[0]), bounds=(-1, 1), method="highs")
    return bool(res.status == 0 and -res.fun > 1e-7 * n)


def _polish(f: _Logistic, t):
    """Newton to GTOL: exact Hessian (binary) or trust-ncg with exact Hessian-vector products."""
    from scipy.optimize import minimize

    if f.k == 1 and not f.sparse:
        t, val, g = _newton_binary(f, t)
        return t, val, g, "Newton (exact Hessian)"
    res = minimize(
        f.value_grad, t, jac=True, hessp=f.hessp, method="trust-ncg", options={"gtol": GTOL, "maxiter": 500}
    )
    val, g = f.value_grad(res.x)
    return res.x, val, g, "trust-ncg (exact Hessian-vector products)"


def _solve_logistic(X, y, n_classes: int, weight_decay: float, start=None) -> Optimum:
    from scipy.optimize import minimize

    t0 = time.perf_counter()
    f = _Logistic(X, y, n_classes, weight_decay)
    if weight_decay == 0 and _no_finite_optimum(f):
        return Optimum(
            float("nan"),
            "linprog (highs)",
            TOLERANCE,
            time.perf_counter() - t0,
            "no finite optimum: the classes are linearly separable and weight_decay is 0, so the "
            "loss keeps falling as ||W|| grows; set weight_decay > 0 for a suboptimality",
        )
    t = np.zeros((f.d + 1) * f.k) if start is None else np.asarray(start, dtype=np.float64).ravel()
    t, val, g, solver = _polish(f, t)
    if np.linalg.norm(g) >= 1e3 * GTOL:
        # Newton stalled (it should not on a convex loss): L-BFGS-B first, then polish again.
        t = minimize(f.value_grad, t, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-9}).x
        t, val, g, solver = _polish(f, t)
        solver = f"L-BFGS-B + {solver}"
    T = t.reshape(f.d + 1, f.k)
    gnorm = float(np.linalg.norm(g))
    message = "" if gnorm < 1e3 * GTOL else f"the gradient's norm stopped at {gnorm:.2g}"
    seconds = time.perf_counter() - t0
    return Optimum(val, solver, TOLERANCE, seconds, message, T[:-1].copy(), T[-1].copy(), f.evaluations)


def _solve_sparse_linear(X, y, weight_decay: float) -> Optimum:
    """mean((X w + b - y)^2) + wd/2 ||w||^2 for sparse X: LSQR on X centred implicitly (a linear
    operator: X v - 1 (mean . v)), damped by sqrt(n wd / 2); then b = mean(y) - mean(X) . w."""
    from scipy.sparse.linalg import LinearOperator, lsqr

    t0 = time.perf_counter()
    X, y = _float64(X), np.asarray(y, dtype=np.float64)
    n, d = X.shape
    mx, my = np.asarray(X.mean(axis=0)).ravel(), y.mean()
    A = LinearOperator(
        (n, d), matvec=lambda v: X @ v - mx @ v, rmatvec=lambda u: X.T @ u - mx * u.sum(), dtype=np.float64
    )
    damp = math.sqrt(0.5 * n * weight_decay)
    w = lsqr(A, y - my, damp=damp, atol=1e-15, btol=1e-15, conlim=1e15, iter_lim=20 * d)[0]
    W, b = w[:, None], np.array([my - mx @ w])
    val = objective(X, y, W, b, weight_decay, "regression")
    return Optimum(val, "LSQR (sparse, centred implicitly)", TOLERANCE, time.perf_counter() - t0, "", W, b)


def _solve_linear(X, y, weight_decay: float) -> Optimum:
    """Closed form of mean((X w + b - y)^2) + wd/2 ||w||^2: centre, then (Xc^T Xc + n wd/2 I) w = Xc^T yc."""
    if sparse.issparse(X):
        return _solve_sparse_linear(X, y, weight_decay)
    t0 = time.perf_counter()
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mx, my = X.mean(axis=0), y.mean()
    Xc, yc = X - mx, y - my
    if weight_decay > 0:
        w = np.linalg.solve(Xc.T @ Xc + 0.5 * len(y) * weight_decay * np.eye(X.shape[1]), Xc.T @ yc)
        solver = "closed form (ridge normal equations)"
    else:
        w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
        solver = "closed form (numpy.linalg.lstsq)"
    W, b = w[:, None], np.array([my - mx @ w])
    val = objective(X, y, W, b, weight_decay, "regression")
    return Optimum(val, solver, TOLERANCE, time.perf_counter() - t0, "", W, b)


def exact_optimum(X, y, n_classes: int, model: str, weight_decay: float, start=None) -> Optimum | None:
    """F* of the training objective on (X, y); None for a non-convex model (mlp)."""
    if model == "mlp":
        return None
    if model == "linear":
        return _solve_linear(X, y, weight_decay)
    return _solve_logistic(X, y, n_classes, weight_decay, start)


INLINE_VALUES = 200_000
"""Below this many values in the solve (n x (d + 1) x outputs), F* takes milliseconds (a binary
Newton solve on breast_cancer: under 1 ms): solved where it is needed, before or after training."""


def cheap(split) -> bool:
    """Whether F* on this split costs milliseconds (INLINE_VALUES; sparse: its stored values)."""
    n, d = split.X_train.shape
    outputs = 1 if split.n_classes <= 2 else split.n_classes
    values = split.X_train.nnz + n if sparse.issparse(split.X_train) else n * (d + 1)
    return values * outputs <= INLINE_VALUES


_CACHE: dict[tuple[str, str, float], Optimum | None] = {}


def _key(digest: str, model: str, weight_decay: float) -> tuple[str, str, float]:
    return (digest, model, float(weight_decay))


def cached_optimum(config, split) -> tuple[bool, Optimum | None]:
    """(found, F*) from this process's cache, without solving."""
    key = _key(split.digest, config.model, config.weight_decay)
    return (key in _CACHE, _CACHE.get(key))


def warm_start(digest: str, model: str, weight_decay: float) -> np.ndarray | None:
    """The cached minimiser of the same data at the nearest weight decay (log scale), if any:
    Newton is then a few steps from the new optimum."""
    if model != "logistic" or weight_decay <= 0:
        return None
    near = [
        (abs(math.log(wd / weight_decay)), opt)
        for (dig, mod, wd), opt in _CACHE.items()
        if dig == digest and mod == "logistic" and wd > 0 and opt is not None and opt.finite
    ]
    if not near:
        return None
    opt = min(near, key=lambda p: p[0])[1]
    return np.vstack([opt.W, opt.b[None, :]])


def remember(config, split, found: Optimum | None) -> Optimum | None:
    """Cache F* solved elsewhere (e.g. in a helper process) under the config's key."""
    _CACHE[_key(split.digest, config.model, config.weight_decay)] = found
    return found


def solve(digest: str, X, y, n_classes: int, model: str, weight_decay: float) -> Optimum | None:
    """exact_optimum, cached in this process under (digest, model, weight_decay) and warm-started
    from the nearest weight decay solved on the same data."""
    key = _key(digest, model, weight_decay)
    if key not in _CACHE:
        start = warm_start(digest, model, weight_decay)
        _CACHE[key] = exact_optimum(X, y, n_classes, model, weight_decay, start)
    return _CACHE[key]


def optimum_for(config, split) -> Optimum | None:
    """F* for the config's model and weight decay on the split's training rows (cached by digest)."""
    data = (split.X_train, split.y_train, split.n_classes)
    return solve(split.digest, *data, config.model, config.weight_decay)
