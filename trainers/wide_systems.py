"""Linear systems of wide data, solved in the rows' size: `zᵀ diag(d) z + diag(a)` bordered by a few unknowns.

Newton's system of a fit with more columns than rows (Huber regression on 200 x 2000) costs `p³` dense, where
the Woodbury identity gives `(zᵀ D z + A)⁻¹ = A⁻¹ - A⁻¹ zᵀ (D⁻¹ + z A⁻¹ zᵀ)⁻¹ z A⁻¹`: an `n x n` solve and
products of `z`. Columns without a diagonal of their own (the intercept) and extra unknowns (Huber's scale σ)
are the border, eliminated through their Schur complement.
"""

from __future__ import annotations

import numpy as np


def solve_bordered(z, d, diagonal, own, border, corner, rhs) -> np.ndarray:
  """The solution `s [p + b]` of `M s = rhs` for

    M = [[zᵀ diag(d) z + diag(diagonal), zᵀ border],
         [borderᵀ z,                     corner   ]]

  `z [n, p]`, `d [n]` (>= 0), `diagonal [p]`, `own [p]` (bool: the columns eliminated by Woodbury, whose
  diagonal is their own penalty's and > 0; the others, such as the intercept, join the border),
  `border [n, b]`, `corner [b, b]`, `rhs [p + b]`."""
  p = z.shape[1]
  z_s, z_t = z[:, own], z[:, ~own]
  a = diagonal[own]
  # The border of the eliminated block: M[own, rest] = z_sᵀ g, rest = (the other columns, then `border`).
  g = np.hstack([d[:, None] * z_t, border])
  rest = np.block([[z_t.T @ (d[:, None] * z_t) + np.diag(diagonal[~own]), z_t.T @ border],
                   [border.T @ z_t, corner]])
  rows = d > 0
  scaled = z_s[rows] / a  # z A⁻¹ on the rows with curvature
  inner = np.diag(1 / d[rows]) + scaled @ z_s[rows].T

  def inverse(x):  # (z_sᵀ D z_s + A)⁻¹ x, x [|own|, k]
    return x / a[:, None] - scaled.T @ np.linalg.solve(inner, scaled @ x)

  rhs_s = rhs[:p][own]
  rhs_t = np.concatenate([rhs[:p][~own], rhs[p:]])
  coupling = z_s.T @ g  # [|own|, t]
  solved = inverse(np.hstack([coupling, rhs_s[:, None]]))
  u, first = solved[:, :-1], solved[:, -1]
  schur = rest - coupling.T @ u
  s_t = np.linalg.solve(schur, rhs_t - coupling.T @ first)
  s_s = first - u @ s_t
  solution = np.empty(p + border.shape[1])
  solution[:p][own] = s_s
  solution[np.r_[np.flatnonzero(~own), p + np.arange(border.shape[1])]] = s_t
  return solution
