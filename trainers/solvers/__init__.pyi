"""The names `flaxzoo.trainers.solvers` re-exports (read by `lazy_loader.attach_stub` and by type checkers)."""

from ._choice import EXACT_LOSSES as EXACT_LOSSES
from ._choice import GLM_FAMILIES as GLM_FAMILIES
from ._choice import ROBUST_LOSSES as ROBUST_LOSSES
from ._choice import SOLVERS as SOLVERS
from ._choice import check_solver as check_solver
from ._choice import choose as choose
from ._choice import pass_dtype as pass_dtype
from ._line_search import ARMIJO as ARMIJO
from ._line_search import minimise as minimise
from ._optimality import largest_violation as largest_violation
from ._sandwich import leverage_meat as leverage_meat
from ._sandwich import sandwich_sums as sandwich_sums
from ._sizes import CHUNK as CHUNK
from ._sizes import NEWTON_MAX_PARAMS as NEWTON_MAX_PARAMS
from ._sizes import bucket as bucket
from ._solution import Solution as Solution
from ._solve import glm_gradient_scale as glm_gradient_scale
from ._solve import solve as solve
from ._staging import Staged as Staged
from ._staging import stage as stage
from ._weights import Weights as Weights
from ._weights import chunked_weights as chunked_weights
