"""Exact solvers of the linear models: the normal equation, Newton (IRLS) and L-BFGS, for K models at once.

>>> data = stage(x, y, "mse")                          # the rows on the device, once
>>> fit = solve(data, weights=[[1.0] * n], l2=[0.0])   # K = 1 model; weights [K, n] (folds), l2 [K]
>>> fit.coef[0], fit.intercept[0]                      # [d, k], [k], float64

The objective of model `j` is the trainer's: the `weights[j]`-weighted mean of the loss (MSE averaged
over outputs, logistic, softmax) plus `l2[j] / 2 * |W|²` (the intercept is not penalised).

- `normal_equation` (MSE): one pass builds each model's weighted Gram matrix of `[x, y, 1]`; the solve
  is an eigendecomposition in float64 of the standardised covariance, so that collinear or
  rank-deficient features get the minimum-norm solution, as `np.linalg.lstsq` (in the raw features).
- `newton` (logistic, softmax): a pass a iteration builds the loss, its gradient and Hessian; a
  float64 solve gives the step, halved until the objective falls enough (Armijo); it stops when the
  gradient's largest entry is below `tol` (the objective is a weighted mean: scale-free in `n`).
- `lbfgs`: a pass an iteration builds the loss and gradient; two-loop L-BFGS on the host in float64.
  `auto` takes it where the Hessian has more than `NEWTON_MAX_PARAMS` rows.
- An L1 part (`solve(l1=)`): least squares by coordinate descent on the Gram matrix; the other losses by
  proximal Newton (`_proximal_newton`: coordinate descent on Newton's penalised quadratic model). Both
  soft-threshold, so the zeros are 0.0, and stop on the largest violation of the optimality conditions.
- The log-link GLMs (`poisson`, `gamma`, `tweedie`): Newton with Fisher's curvature (IRLS) or L-BFGS.

Precision: the pass runs in the data's dtype (float32 stays float32; float64 input runs in float64,
where a float32 Gram matrix would lose the answer of a condition number above ~1e3) inside
`jax.enable_x64`; the d x d solves always run in float64. Features are standardised inside the pass
(shift and scale from the first rows) and the weights normalised to sum 1 per model on the host, so
that features scaled by 1e-10, weights of 1e-50 or targets near 1e7 lose nothing. Where the passes read the
rows: one model's on float64 rows on a CPU, in more chunks than one program takes, on the host where they are
(`_host_passes`: NumPy blocks on the cores, the same loss; no copy of the rows to the device); every other
pass on the device.

One compilation serves many fits: the programs are module-level `jax.jit`s whose shapes are the row
bucket (a power of two up to `CHUNK` rows; more rows go in chunks of `CHUNK`, the last one padded with
weight-0 rows), `d`, `k`, `K` and the dtype; penalties, tolerances and weights are arguments. A new
estimator, fold, penalty or `Trainer` of the same shape compiles nothing.
"""

import lazy_loader

# Each name imported from its module on first use (`__init__.pyi` lists them): `choose` without JAX.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
