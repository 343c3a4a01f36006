"""Linear systems of wide data, solved in the rows' size: `zᵀ diag(d) z + diag(a)` bordered by a few unknowns.

Newton's system of a fit with more columns than rows (Huber regression on 200 x 2000) costs `p³` dense, where
the Woodbury identity gives `(zᵀ D z + A)⁻¹ = A⁻¹ - A⁻¹ zᵀ (D⁻¹ + z A⁻¹ zᵀ)⁻¹ z A⁻¹`: an `n x n` solve and
products of `z`. Columns without a diagonal of their own (the intercept) and extra unknowns (Huber's scale σ)
are the border, eliminated through their Schur complement.
"""

from __future__ import annotations

import numpy as np


class WideSystem:
  """The systems of one wide `z [n, p]` (its columns split once): `solve` gives `s [p + b]` of `M s = rhs` for

    M = [[zᵀ diag(d) z + diag(diagonal), zᵀ border],
         [borderᵀ z,                     corner   ]]

  `own [p]` (bool): the columns eliminated by Woodbury, whose diagonal is their own penalty's and > 0; the
  others, such as the intercept, join the border."""

  def __init__(self, z, own):
    self.p, self.own = z.shape[1], own
    self.z_s, self.z_t = z[:, own], z[:, ~own]
    self.order = np.flatnonzero(~own)

  def solve(self, d, diagonal, border, corner, rhs) -> np.ndarray:
    """`d [n]` (>= 0), `diagonal [p]`, `border [n, b]`, `corner [b, b]`, `rhs [p + b]`."""
    p, own, z_s, z_t = self.p, self.own, self.z_s, self.z_t
    a = diagonal[own]
    # The border of the eliminated block: M[own, rest] = z_sᵀ g, rest = (the other columns, then `border`).
    g = np.hstack([d[:, None] * z_t, border])
    rest = np.block([[z_t.T @ (d[:, None] * z_t) + np.diag(diagonal[~own]), z_t.T @ border],
                     [border.T @ z_t, corner]])
    rows = d > 0
    curved = z_s if rows.all() else z_s[rows]
    half = curved * (1 / np.sqrt(a))  # z A^-1/2 on the rows with curvature: the inner product is one SYRK
    inner = half @ half.T
    inner[np.diag_indices_from(inner)] += 1 / d[rows]
    scaled = half * (1 / np.sqrt(a))  # z A⁻¹

    def inverse(x):  # (z_sᵀ D z_s + A)⁻¹ x, x [|own|, k]
      return x / a[:, None] - scaled.T @ np.linalg.solve(inner, scaled @ x)

    rhs_s = rhs[:p][own]
    rhs_t = np.concatenate([rhs[:p][~own], rhs[p:]])
    coupling = z_s.T @ g  # [|own|, t]
    solved = inverse(np.hstack([coupling, rhs_s[:, None]]))
    u, first = solved[:, :-1], solved[:, -1]
    schur = rest - coupling.T @ u
    s_t = np.linalg.solve(schur, rhs_t - coupling.T @ first)
    solution = np.empty(p + border.shape[1])
    solution[:p][own] = first - u @ s_t
    solution[np.r_[self.order, p + np.arange(border.shape[1])]] = s_t
    return solution


def solve_bordered(z, d, diagonal, own, border, corner, rhs) -> np.ndarray:
  """`WideSystem(z, own).solve(d, diagonal, border, corner, rhs)`, once."""
  return WideSystem(z, own).solve(d, diagonal, border, corner, rhs)
