"""The sums a covariance is made of, from one pass over the staged rows at a fitted model (float64).

Per row, from the loss's own terms (`losses.log_link_terms`, `logistic_parts`; least squares: the residual):
the score `w_i dz_i f_i` (`f_i = [standardised x_i, 1]`, `dz` the loss's derivative in the linear predictor),
Fisher's curvature `c_i` and the observed one (a log link's `c_i + (1 - p) dz_i`: the non-canonical families
differ there). Summed: `Σ w c f fᵀ` (the bread of the model-based covariance), `Σ w c_obs f fᵀ` (the robust
sandwich's bread, as statsmodels' GLM takes the observed Hessian there), `Σ (w dz)² f fᵀ` (White's meat),
each cluster's score sum `[G, p]`, and Pearson's `Σ w dz² / c` (least squares: the weighted residual sum of
squares). `leverage_meat`: the meat with each row's leverage `h_i = w_i c_i f_iᵀ A f_i` (HC2 divides by
`1 - h`, HC3 by `(1 - h)²`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from flaxzoo.trainers import losses as losses_lib
from flaxzoo.trainers.host_blas import in_parts, one_thread
from flaxzoo.trainers.solvers._grams import HOST_BLOCK_ROWS, centred_sums, marked_ends
from flaxzoo.trainers.solvers._staging import Staged


def _row_parts(x, theta, labels, shift, scale, loss: str, family):
  """`(dz, fisher, observed)` `[C]` each at `theta [p]` (standardised features, intercept last): the
  standardisation folded into the parameters (`_passes._value_grad`'s way: no standardised copy of the rows)."""
  kernel = theta[:-1] / scale
  return _terms_at(x @ kernel + (theta[-1] - shift @ kernel), labels, loss, family)


def _terms_at(eta, labels, loss: str, family, xp=jnp):
  """`_row_parts` at the linear predictor `eta [C]`, in `xp`'s arrays (`labels [C]`; least squares' `[C, 1]`)."""
  if loss == "mse":
    ones = xp.ones_like(eta)
    return eta - labels[:, 0], ones, ones
  y = labels.astype(eta.dtype)
  if family:
    dz, curvature = losses_lib.log_link_terms(eta, y, family[1], xp)
  else:
    _, dz, curvature = losses_lib.logistic_parts(eta, y, xp)
  observed = curvature if not family or family[1] == 1 else curvature + (1 - family[1]) * dz
  return dz, curvature, observed


@functools.partial(jax.jit, static_argnames=("loss", "family"))
def _row_terms(x, theta, labels, shift, scale, loss: str, family):
  """`(dz, fisher, observed)` `[C]` each: the loss's parts per row (`_row_parts`)."""
  return _row_parts(x, theta, labels, shift, scale, loss, family)


def _features(x, shift, scale) -> np.ndarray:
  """`[C, p]`: the chunk's standardised features and a column of ones, float64 on the host."""
  return np.concatenate([(np.asarray(x) - shift) / scale, np.ones((len(x), 1))], axis=1)


class _Gram:
  """`Σ weight f fᵀ` `[p, p]` of `f = [(x - shift) / scale, 1]`, a block of raw rows `x [C, d]` (float64) at a
  time (`add`), as `_grams._host_grams` sums them: the raw `xᵀ diag(weight) x` in one BLAS call a block (a
  symmetric rank-k update where every weight is >= 0; no standardised copy of the rows: XLA's float64 GEMM of
  the 33 columns took 4 times as long), `xᵀ weight` and `Σ weight`, centred once at the end (`value`, None
  where that would lose precision: `_grams.centred_sums`). `standardised`: the features' own products summed
  (the rows centred before they are summed)."""

  def __init__(self, d: int, shift, scale, standardised: bool = False):
    self.shift, self.scale, self.standardised = shift, scale, standardised
    width = d + 1 if standardised else d
    self.raw, self.sums, self.total = np.zeros((width, width)), np.zeros(d), 0.0
    self.buffer = np.empty((BLOCK_ROWS, width))  # the weighted rows (one buffer: a new array a block cost 1.3x)

  def add(self, x, weight, uniform: bool = False):
    """`uniform`: every entry of `weight` is `weight[0]` (no weighted copy of the rows)."""
    if self.standardised:
      x = _features(x, self.shift, self.scale)
    if uniform:
      self.raw += weight[0] * (x.T @ x)
    elif np.all(weight >= 0):
      u = np.einsum("ij,i->ij", x, np.sqrt(weight), out=self.buffer[:len(x)])  # (multiply's broadcast: 1.4x)
      self.raw += u.T @ u
    else:
      self.raw += x.T @ (x * weight[:, None])
    if not self.standardised:
      self.sums += x.T @ weight
      self.total += weight.sum()

  @staticmethod
  def merged(parts: list[_Gram]) -> _Gram:
    """One `_Gram` of the sums of `parts` (each a share of the blocks)."""
    first = parts[0]
    for other in parts[1:]:
      first.raw += other.raw
      first.sums += other.sums
      first.total += other.total
    return first

  def value(self) -> np.ndarray | None:
    if self.standardised:
      return self.raw
    d = len(self.shift)
    centred = centred_sums(self.raw, self.sums, self.total, self.shift)
    if centred is None:
      return None
    gram = np.empty((d + 1, d + 1))
    gram[:d, :d] = centred / np.outer(self.scale, self.scale)
    gram[:d, d] = gram[d, :d] = (self.sums - self.total * self.shift) / self.scale
    gram[d, d] = self.total
    return gram


# Rows a block of the host sums: every sum of a block reads its rows from the cache, not memory (the Grams of 1M
# x 32 float64 rows are memory-bound here: HC1's sums in blocks of 65536 rows 0.34 s, of 4096 0.22 s).
BLOCK_ROWS = HOST_BLOCK_ROWS


def _cluster_sums(x, score, codes, num_groups: int, shift, scale) -> np.ndarray:
  """`[G, p]`: each cluster's `Σ score_i f_i`, `f = [(x - shift) / scale, 1]`: one sparse product of all the
  rows (a column a row, its cluster's entry the row's score: 1M x 32 rows into 1,000 clusters, 37 ms; a
  bincount a column took 200, a product a block of rows 130), standardised after (linear in the rows)."""
  import scipy.sparse

  count = len(score)
  onehot = scipy.sparse.csc_matrix((score, codes, np.arange(count + 1)), shape=(num_groups, count))
  raw, total = onehot @ x, np.bincount(codes, score, num_groups)
  with np.errstate(invalid="ignore", over="ignore"):  # (a thread's own: non-finite rows, reported after)
    return np.concatenate([(raw - total[:, None] * shift) / scale, total[:, None]], axis=1)


def _host_terms(data: Staged, theta: np.ndarray):
  """`(x [n, d], terms)`: the rows on the host and `terms(start, stop) -> (dz, fisher, observed)` of those rows:
  from the rows where they are (`data.host` / `data.host_rows`: no copy to the device, a chunk copied back
  from it cost what its sums do), a block's linear predictor and its terms in NumPy as the sums reach it (its
  rows then read once: 1M x 32 Poisson, a pass 37 -> ~8 ms less than a GEMV of all rows and XLA's terms a chunk
  at a time); else (rows only on the device) every chunk's compiled `_row_terms`, all dispatched before the
  first is read."""
  if data.host is not None:
    x, y = data.host
    kernel = theta[:-1] / data.pass_scale
    bias = theta[-1] - data.pass_shift @ kernel

    def residuals(start, stop):
      with np.errstate(invalid="ignore", over="ignore"):  # (non-finite rows: reported from the sums)
        dz = x[start:stop] @ kernel + bias - y[start:stop, 0]
      ones = np.ones_like(dz)
      return dz, ones, ones

    return x, residuals
  if data.host_rows is not None:  # a block's linear predictor and terms while its rows are in the cache
    x = data.host_rows
    kernel = theta[:-1] / data.pass_scale
    bias = theta[-1] - data.pass_shift @ kernel

    def terms(start, stop):
      with np.errstate(invalid="ignore", over="ignore"):  # (non-finite rows: reported from the sums)
        return _terms_at(x[start:stop] @ kernel + bias, data.targets[start:stop], data.loss, data.family, np)

    return x, terms
  args = data.args()
  xs, ys = data.rows()
  parts = [_row_terms(x, theta, y, *args, loss=data.loss, family=data.family) for x, y in zip(xs, ys)]
  real = [rows for _, rows, _ in data.bounds]
  terms = [np.concatenate([np.asarray(part[i])[:r] for part, r in zip(parts, real)]) for i in range(3)]
  x = np.concatenate([np.asarray(v)[:r] for v, r in zip(xs, real)])
  return x, lambda start, stop: tuple(v[start:stop] for v in terms)


def _blocks(n: int, part: int, parts: int):
  """`(start, stop)` of the blocks of `BLOCK_ROWS` rows that part `part` of `parts` sums (every parts-th)."""
  return ((start, min(start + BLOCK_ROWS, n)) for start in range(part * BLOCK_ROWS, n, parts * BLOCK_ROWS))


def sandwich_sums(data: Staged, theta: np.ndarray, weight: np.ndarray, groups: np.ndarray | None = None,
                  num_groups: int = 0, robust: bool = False, observed: bool = True, fitted: dict | None = None,
                  fingerprint: bool = False) -> dict:
  """One pass at `theta [d + 1]` (standardised, intercept last) with example weights `weight [n]` (as given,
  not normalised) and cluster codes `groups [n]` (0..G-1): the sums named in the module's docstring, float64
  on the host (`observed=False`: no observed Hessian, which the model-based covariance does not read; `robust`:
  White's meat). `data`: staged in float64, one output (least squares, logistic, or a log-link family). The
  per-row terms come from the compiled pass, the sums from NumPy's BLAS (one thread a call, `host_blas`; the
  blocks of rows split over the cores, `in_parts`). A second pass centres the rows before it sums them where
  the first's sums would lose precision.

  Fisher's sum from the fit, where the rows are the fit's (`fitted`, checked by the rows' fingerprint,
  `_fingerprint`: no Gram of its own a block; HC1 on 1M x 32 rows, one Gram of two): least squares' `{"gram":
  [D, D], "sketch"}` (`Solution.moments`, every row weighed alike) where every weight is the same; a log link's
  or logistic's `{"fisher": [p, p], "sketch", "theta"}` (a pass's own, `fingerprint=True` gives `"sketch"`) at
  the same `theta`. Else (other rows, weights or coefficients) the pass sums it."""
  with jax.enable_x64(True), one_thread(scipy=False), np.errstate(invalid="ignore", over="ignore"):
    # (NumPy's BLAS only: no SciPy import for it; non-finite rows give non-finite sums, `covariance` says so)
    x, terms = _host_terms(data, theta)
    if not _takes(fitted, data, theta, weight):
      fitted = None
    for standardised in (False, True):
      sums = _sums(data, x, terms, weight, groups, num_groups, robust, observed, standardised, fitted,
                   fingerprint or fitted is not None)
      if sums is not None and fitted is not None and not np.array_equal(sums["sketch"], fitted["sketch"]):
        fitted, sums = None, _sums(data, x, terms, weight, groups, num_groups, robust, observed, standardised,
                                   None, fingerprint)
      if sums is not None:
        return sums


def _takes(fitted: dict | None, data: Staged, theta: np.ndarray, weight: np.ndarray) -> bool:
  """Whether `fitted`'s Fisher sum can stand for this pass's, if the rows' fingerprint agrees."""
  if fitted is None:
    return False
  if data.loss == "mse":
    return "gram" in fitted and data.host is not None and bool(np.all(weight == weight[0]))
  return "fisher" in fitted and data.host_rows is not None and np.array_equal(fitted["theta"], theta)


def _fingerprint(data: Staged, rows: np.ndarray, w: np.ndarray, start: int, stop: int) -> np.ndarray:
  """`[d, k + 2]` (a log link's or logistic's `[d, 4]`): a block's share of the rows' fingerprint,
  `xᵀ _grams.marked_ends` of least squares' targets (the products `_grams._host_grams` sums), of a GLM's
  targets and weights (their Fisher sum's other inputs)."""
  ends = data.host[1][start:stop] if data.loss == "mse" else np.stack([data.targets[start:stop], w], axis=1)
  return rows.T @ marked_ends(ends, start)


def _sums(data: Staged, x, terms, weight, groups, num_groups: int, robust: bool, observed: bool,
          standardised: bool, fitted: dict | None = None, fingerprint: bool = False):
  """`sandwich_sums`' pass; None where a Gram's centring after the sums loses precision (`_Gram.value`).
  `fitted`: Fisher's sum from the fit, no Gram of it here; `fingerprint`: the rows' (`"sketch"`)."""
  non_canonical = bool(data.family) and data.family[1] != 1 and observed
  # Pearson's sum: read by least squares and the estimated dispersions only (a saturated logistic or Poisson
  # row has curvature 0: no division by it)
  dispersion = data.loss != "logistic" and (data.family is None or data.family[1] != 1)
  shift, scale = data.pass_shift, data.pass_scale
  uniform = data.loss == "mse" and bool(np.all(weight == weight[0]))  # (least squares' curvature is 1)
  scores = np.empty(data.n) if num_groups else None

  def work(part: int, parts: int):
    grams = {name: _Gram(data.d, shift, scale, standardised)
             for name, wanted in (("fisher", fitted is None), ("observed", non_canonical), ("meat", robust)) if wanted}
    pearson, sketch = 0.0, 0.0
    for start, stop in _blocks(data.n, part, parts):
      rows, w, (dz, curvature, obs) = x[start:stop], weight[start:stop], terms(start, stop)
      # (NaN or infinity in the rows: non-finite sums, which `covariance` reports; a thread's own errstate)
      with np.errstate(invalid="ignore", over="ignore"):
        if fitted is None:
          grams["fisher"].add(rows, w if uniform else w * curvature, uniform)
        if fingerprint:  # (the same products of the same blocks, in the same order, as the fit's pass)
          sketch = sketch + _fingerprint(data, rows, w, start, stop)
        if non_canonical:
          grams["observed"].add(rows, w * obs)
        if robust:
          grams["meat"].add(rows, (w * dz) ** 2)
        if num_groups:
          scores[start:stop] = w * dz
        if dispersion:
          pearson += float(np.sum(w * dz * dz / curvature))
    return grams, pearson, sketch

  parts = in_parts(work)
  values = {name: _Gram.merged([grams[name] for grams, _, _ in parts]).value() for name in parts[0][0]}
  if any(value is None for value in values.values()):
    return None
  p = data.d + 1
  if fitted is not None and "gram" in fitted:  # [x, 1] of least squares' [x, y, 1], on these weights' scale
    keep = np.r_[np.arange(data.d), data.d + 1]
    values["fisher"] = float(np.sum(weight)) * np.asarray(fitted["gram"])[np.ix_(keep, keep)]
  elif fitted is not None:
    values["fisher"] = np.asarray(fitted["fisher"])
  if fingerprint:
    values["sketch"] = sum(sketch for _, _, sketch in parts)
  clusters = np.zeros((0, p))
  if num_groups:
    bounds = np.linspace(0, data.n, len(parts) + 1).astype(int)
    clusters = sum(in_parts(lambda i, _: _cluster_sums(x[bounds[i]:bounds[i + 1]], scores[bounds[i]:bounds[i + 1]],
                                                       groups[bounds[i]:bounds[i + 1]], num_groups, shift, scale),
                            len(parts)))
  values.setdefault("observed", values["fisher"])  # canonical links and least squares: the same curvature
  return {"meat": np.zeros((p, p)), **values, "clusters": clusters, "pearson": sum(v for _, v, _ in parts)}


def leverage_meat(data: Staged, theta: np.ndarray, weight: np.ndarray, inverse: np.ndarray, power: int) -> np.ndarray:
  """`[p, p]`: HC2's (`power` 1) or HC3's (2) meat, `h_i = w_i c_i f_iᵀ inverse f_i` (`inverse`: the Fisher
  bread's inverse)."""
  with jax.enable_x64(True), one_thread(scipy=False):  # (NumPy's BLAS only: no SciPy import for it)
    x, terms = _host_terms(data, theta)

    def work(part: int, parts: int) -> np.ndarray:
      meat = np.zeros((data.d + 1, data.d + 1))
      for start, stop in _blocks(data.n, part, parts):
        f = _features(x[start:stop], data.pass_shift, data.pass_scale)
        dz, curvature, _ = terms(start, stop)
        w = weight[start:stop]
        leverage = w * curvature * np.einsum("ij,ij->i", f @ inverse, f)
        score = f * (w * dz / (1 - leverage) ** (power / 2))[:, None]
        meat += score.T @ score
      return meat

    return sum(in_parts(work))
