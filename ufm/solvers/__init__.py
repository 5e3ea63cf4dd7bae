"""Numerical minimization of the unconstrained-features objectives (docs/theory.md §1.2, §2).

``solve(model, method=...)`` minimizes Φ(θ) = (1/(2N))‖F(θ) − Y‖_F² + Σ_j (λ_j/2)‖θ_j‖_F² for any
model of :mod:`ufm.models` (``UFM``, ``DeepLinearUFM``, ``DeepUFM``, ``LinearHead``) and returns a
:class:`Solution`. Methods:

- ``"auto"`` (the default): ``"global"`` for the deep models, ``"lbfgs"`` for the UFM and the
  linear head (:func:`default_method`).
- ``"global"``: the search for the global minimum (:mod:`~ufm.solvers.global_search`): local
  runs from the known constructions (closed-form or DNC optimum, SRG family of docs/theory.md §4.5),
  from random, low-rank and narrow-width starts and from perturbations of the best points so
  far, until no lower basin appears for ``patience`` starts. Its :class:`Solution` lists every
  distinct basin found (value, class-mean rank profile, how often, found by which start), and
  its value is never above a construction or a given start.
- ``"gd"``: plain full-batch gradient descent as the papers ran it, θ ← θ − η∇Φ(θ) with a fixed
  step η (``lr``), followed by the projection H₁ ← max(H₁, 0) when the model has ``nonneg_H1``
  (projected GD, docs/theory.md §2(c)). float64 numpy.
- ``"lbfgs"``: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the flattened parameter vector
  (bounds H₁ ≥ 0 for ``nonneg_H1``); on smooth objectives (no ReLU, no bound) followed, once it
  stalls at the float64 resolution of Φ, by gradient steps with Barzilai-Borwein step sizes that
  lower ‖∇Φ‖ further. float64 numpy.
- ``"numpy_lbfgs"``: L-BFGS written in numpy on the flattened vector (two-loop recursion, Armijo
  backtracking on the model's fused value-and-gradient), optionally after ``warmup_steps`` steps
  of the fixed-step GD above (to start the quasi-Newton phase in the basin GD enters). No scipy
  driver per call: about one evaluation plus a few vector operations per iteration. Without
  bounds (not for ``nonneg_H1``); the Barzilai-Borwein polish of ``"lbfgs"`` on smooth models.
- ``"kink_lbfgs"``: for the ReLU DUFM. ``warmup_steps`` steps of the fixed-step GD above, then
  ``momentum_steps`` Nesterov steps (step ``lr``, coefficient ``momentum``, restarted whenever Φ
  increases), then the numpy L-BFGS above, which at its start and whenever it stalls (Φ lowered
  by ≤ ``stall_decrease`` relative in ``stall_window`` iterations, or no Armijo step) re-grows
  dead ReLU neurons: a hidden neuron whose pre-activations are all ≤ 0 receives no gradient, so
  GD and L-BFGS never move it, yet replacing its input row and output column by the
  second-order descent pair (u, v) with ‖Gσ(Hᵀu)‖ > √(λ_kλ_{k+1}) lowers Φ (kept only if the
  true Φ decreases). At the same moments it re-grows collapsed classes (mean own-class output
  below half the median over classes: a spurious near-stationary region where the whole path
  of the class is small and its gradients are products of small factors) as an exclusive chain
  of neurons, again kept only if Φ decreases. Stops when stalled with nothing to revive.
  Optionally (``smoothing``), between the momentum and the L-BFGS phases, a smoothing
  continuation: L-BFGS on Φ_ε, the objective with every ReLU replaced by its C¹ quadratic
  smoothing of width ε, for decreasing ε (relative to the RMS of the hidden pre-activations).
  The low-rank minima of the DUFM sit on ReLU kinks, where L-BFGS on Φ itself zigzags and
  stalls above the bottom of the basin; the minimizers of Φ_ε lead down to it (every iterate is
  still reported with the true Φ). :data:`KINK_LBFGS_LOW_RANK_SETTINGS` holds the settings of
  the solver benchmark. Without bounds.
- ``"torch_gd"``, ``"torch_lbfgs"``: the same two methods through the model's torch objective and
  autograd, on ``device`` ("auto": CUDA when available, else CPU), float64 by default; for large
  widths. ``torch_lbfgs`` uses ``torch.optim.LBFGS`` with a strong-Wolfe line search.

Every run stops on the first of: stationarity measure ≤ ``tolerance`` (the gradient norm ‖∇Φ‖,
or for ``nonneg_H1`` the natural residual with min(H₁, ∇_{H₁}Φ) in place of ∇_{H₁}Φ), ``max_iterations``,
a non-finite objective (stop reason ``"diverged"``; the last finite iterate is returned), or a
method-specific failure to progress. Loss parts and the gradient norm are recorded at
log-spaced iterations for plots. When a predicted optimum exists (:func:`ufm.optima.predict`),
the gap to it is reported: a proven global optimum for the UFM, the deep linear UFM and the
DUFM with K = 2 or L = 1; for the DUFM with K > 2 and L ≥ 2 the DNC value L_DNC is only a
reference (low-rank points can be lower, docs/theory.md §4.5).

Modules: :mod:`~ufm.solvers.dispatch` (:func:`solve`, :func:`solve_with_restarts`, the option
checks), :mod:`~ufm.solvers.global_search` (``"global"``), :mod:`~ufm.solvers.gradient_descent` (``"gd"`` and the fixed-step warm-up),
:mod:`~ufm.solvers.scipy_lbfgs` (``"lbfgs"`` and the Barzilai-Borwein polish),
:mod:`~ufm.solvers.numpy_lbfgs` (``"numpy_lbfgs"`` and the L-BFGS pieces it shares),
:mod:`~ufm.solvers.kink_lbfgs` (``"kink_lbfgs"``), :mod:`~ufm.solvers.torch_methods`
(``"torch_gd"``, ``"torch_lbfgs"``), :mod:`~ufm.solvers.results` (:class:`Solution`,
:class:`History`, :class:`RestartsResult`) and :mod:`~ufm.solvers.common` (machinery shared by
the methods). Every public name is importable from ``ufm.solvers``.
"""

from .common import log_spaced_iterations, predicted_reference, resolve_device, stationarity_norm
from .dispatch import METHODS, default_method, solve, solve_with_restarts
from .global_search import Basin, class_mean_ranks
from .kink_lbfgs import KINK_LBFGS_LOW_RANK_SETTINGS  # public, outside __all__ (as before)
from .results import PREDICTED_KINDS, STOP_REASONS, History, RestartsResult, Solution

__all__ = [
    "Basin",
    "class_mean_ranks",
    "default_method",
    "METHODS",
    "PREDICTED_KINDS",
    "STOP_REASONS",
    "History",
    "Solution",
    "RestartsResult",
    "solve",
    "solve_with_restarts",
    "predicted_reference",
    "resolve_device",
    "stationarity_norm",
    "log_spaced_iterations",
]
