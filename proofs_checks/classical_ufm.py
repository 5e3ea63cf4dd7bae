"""Classical UFM results and the deep linear UFM (docs/theory.md §4.1–4.2, §5 U0–U4).

Every check evaluates the package's own code: the objectives and gradients of
:mod:`ufm.models`, the closed forms of :mod:`ufm.optima`, the solvers of :mod:`ufm.solvers`
and the collapse metrics of :mod:`ufm.metrics`.

Statements
----------
U0 [derived]
    For fixed weights Φ_DUFM (and Φ_UFM) separates over samples, so replacing every sample of class
    c by that class's best sample does not increase Φ; for collapsed points Φ depends on (n, λ_H)
    through nλ_H only: optimal values of (n, λ_H) and (1, nλ_H) agree.
U1 [derived; structure classical, Tirer & Bruna 2022, Dang et al. 2023]
    UFM without bias: GD/closed form agree (value ρ − ρ²/2 for ρ < 1, else ½; WH = q*Y, MᵀM ∝ I,
    W ∝ Mᵀ).
U2 [derived; ETF structure classical, Zhou et al. 2022]
    UFM with bias: b* = 1_K/K, M simplex ETF, value (K−1)/K × U1's.
U3 [derived]
    λ_WWᵀW − λ_HHHᵀ = Wᵀ∇_W − ∇_HHᵀ at any point, so
    ‖λ_WWᵀW − λ_HHHᵀ‖_F ≤ ‖W‖_op‖∇_W‖_F + ‖∇_H‖_F‖H‖_op.
U4 [derived; structure classical, Dang et al. 2023]
    min Φ_lin = L_DNC: the construction attains it, and no point (in particular none found by the
    solvers from random initializations) lies below it.
"""

from __future__ import annotations

import math

import numpy as np

from .catalogue import INEQUALITY_TOLERANCE, Draw, Sides, Statement, Tolerance
from .tools import singular_values

LAMBDA_RANGE = (1e-4, 1e-1)
MODELS = "ufm.models:UFM,DeepLinearUFM,DeepUFM,Parameters"
OPTIMA = "ufm.optima:predict_ufm,predict_dufm,predict_deep_linear,dnc_construct,ufm_optimal_value"
SOLVERS = "ufm.solvers:solve"
METRICS = "ufm.metrics:nc2_orthogonal_frame_distance,nc2_simplex_etf_distance,nc3_self_duality_distance"


def _random_point(model, draw: Draw, collapsed_noise: float | None = None):
    """A random point of ``model``; optionally a collapsed point (H₁ = MY) plus relative noise."""
    from ufm.models import Parameters

    scale = draw.log_uniform(0.1, 3.0, "initialization scale")
    point = model.random_parameters(draw.generator, scale=scale, feature_std=1.0)
    if collapsed_noise is None:
        return point
    features = point.features
    classes, per_class = model.num_classes, model.per_class
    means = features.reshape(features.shape[0], classes, per_class)[:, :, 0]
    collapsed = np.repeat(means, per_class, axis=1)
    collapsed = collapsed + collapsed_noise * np.linalg.norm(collapsed) * draw.generator.standard_normal(
        collapsed.shape
    ) / math.sqrt(collapsed.size)
    return Parameters(features=collapsed, weights=point.weights, bias=point.bias)


def sample_model(draw: Draw, kinds=("ufm", "ufm with bias", "deep linear", "dufm")):
    """A model of one of ``kinds`` with K ∈ 2..6, n ∈ 1..6, L ∈ 1..4, widths K..K+6, λ log-uniform."""
    from ufm.models import UFM, DeepLinearUFM, DeepUFM

    kind = draw.choice(list(kinds), "model")
    classes = draw.integer(2, 6, "K")
    per_class = draw.integer(1, 6, "n")
    lam_h = draw.log_uniform(*LAMBDA_RANGE, "λ_H")
    if kind.startswith("ufm"):
        width = classes + draw.integer(0, 6, "d − K")
        lam_w = draw.log_uniform(*LAMBDA_RANGE, "λ_W")
        model = UFM(classes, per_class, width, lam_w, lam_h, bias=(kind == "ufm with bias"))
        description = {"model": kind, "K": classes, "n": per_class, "d": width,
                       "lambda_W": lam_w, "lambda_H": lam_h}
    else:
        depth = draw.integer(1, 4, "L")
        widths = tuple(classes + draw.integer(0, 6, f"d{l + 1} − K") for l in range(depth))
        lams = tuple(draw.log_uniform(*LAMBDA_RANGE, f"λ{l + 1}") for l in range(depth))
        model_class = DeepLinearUFM if kind == "deep linear" else DeepUFM
        model = model_class(classes, per_class, widths, lam_h, lams)
        description = {"model": kind, "K": classes, "n": per_class, "L": depth, "widths": widths,
                       "lambda_H": lam_h, "lambdas": lams}
    description["_model"] = model
    return description


# ---------------------------------------------------------------------------------------------
# U0
# ---------------------------------------------------------------------------------------------


def sample_u0_collapse(draw: Draw) -> dict:
    """A model and a random point: Gaussian, or collapsed plus relative noise 10^{U[−8, 0]}."""
    instance = sample_model(draw)
    noise = draw.log_uniform(1e-8, 1.0, "noise") if draw.boolean("near collapsed") else None
    instance["noise"] = noise
    instance["_point"] = _random_point(instance["_model"], draw, noise)
    return instance


def per_sample_costs(model, point) -> np.ndarray:
    """c_i = (1/(2N))‖F_i − y_i‖² + (λ_H/2)‖h_i‖², whose sum plus the weight penalty is Φ."""
    output = model.forward(point).output
    fit = np.sum((output - model.targets) ** 2, axis=0) / (2.0 * model.num_samples)
    return fit + 0.5 * model.penalty_weights[0] * np.sum(point.features**2, axis=0)


def evaluate_u0_collapse(instance: dict) -> Sides:
    """U0 (collapse): Φ(every sample of class c replaced by its best sample) ≤ Φ(θ)."""
    from ufm.models import Parameters

    model, point = instance["_model"], instance["_point"]
    costs = per_sample_costs(model, point).reshape(model.num_classes, model.per_class)
    best = np.argmin(costs, axis=1) + np.arange(model.num_classes) * model.per_class
    collapsed = np.repeat(point.features[:, best], model.per_class, axis=1)
    lhs = model.objective(Parameters(features=collapsed, weights=point.weights, bias=point.bias)).total
    rhs = model.objective(point).total
    return Sides(lhs=lhs, rhs=rhs, scale=rhs)


def sample_u0_scaling(draw: Draw) -> dict:
    """A deep model (L ∈ 1..4) and a collapsed point H₁ = MY with random M and weights."""
    instance = sample_model(draw, ("deep linear", "dufm"))
    instance["_point"] = _random_point(instance["_model"], draw, collapsed_noise=0.0)
    return instance


def evaluate_u0_scaling(instance: dict) -> Sides:
    """U0 (nλ_H): Φ_{n,λ_H}(MY, W) = Φ_{1,nλ_H}(M, W) and L_DNC(n, λ_H) = L_DNC(1, nλ_H)."""
    from ufm.models import Parameters
    from ufm.optima import predict_dufm

    model, point = instance["_model"], instance["_point"]
    n = model.per_class
    single = type(model)(model.num_classes, 1, model.widths, n * model.lam_h, model.lam_w)
    means = point.features[:, ::n]
    value_n = model.objective(point).total
    value_1 = single.objective(Parameters(features=means, weights=point.weights)).total
    optimum_n = predict_dufm(model.num_classes, model.num_layers, n, model.lam_h, model.lam_w)
    optimum_1 = predict_dufm(model.num_classes, model.num_layers, 1, n * model.lam_h, model.lam_w)
    return Sides(lhs=np.array([value_n, optimum_n.optimal_loss]),
                 rhs=np.array([value_1, optimum_1.optimal_loss]))


# ---------------------------------------------------------------------------------------------
# U1, U2: the UFM solved numerically against its closed form
# ---------------------------------------------------------------------------------------------

CONVERGED_GRADIENT = 1e-8


def sample_solved_ufm(draw: Draw, bias: bool) -> dict:
    """A UFM (K ∈ 2..5, n ∈ 1..4, d ∈ K..K+4) with ρ = K√(nλ_Wλ_H) ∈ [0.05, 0.95] or > 1, solved by L-BFGS.

    ρ is drawn directly (λ_W log-uniform, λ_H set from ρ); a tenth of the instances lie above the
    threshold ρ = 1 (zero solution).
    """
    from ufm.models import UFM
    from ufm.solvers import solve

    classes = draw.integer(2, 5, "K")
    per_class = draw.integer(1, 4, "n")
    width = classes + draw.integer(0, 4, "d − K")
    lam_w = draw.log_uniform(1e-3, 1e-1, "λ_W")
    rho = draw.uniform(1.05, 1.5, "ρ") if draw.integer(0, 9, "above threshold") == 0 else draw.uniform(
        0.05, 0.95, "ρ")
    lam_h = (rho / classes) ** 2 / (per_class * lam_w)
    model = UFM(classes, per_class, width, lam_w, lam_h, bias=bias)
    solution = solve(model, "lbfgs", seed=draw.generator, tolerance=1e-12, max_iterations=5000,
                     predicted=None)
    return {"K": classes, "n": per_class, "d": width, "lambda_W": lam_w, "lambda_H": lam_h,
            "rho": rho, "gradient_norm": solution.gradient_norm, "_model": model,
            "_solution": solution}


def solver_converged(instance: dict) -> bool:
    """Hypothesis: the solver reached a stationary point (‖∇Φ‖ ≤ 1e-8)."""
    return instance["gradient_norm"] <= CONVERGED_GRADIENT


def converged_with_nonzero_optimum(instance: dict) -> bool:
    """Hypotheses: converged, and ρ < 1 (nonzero optimum, so the structure metrics are defined)."""
    return solver_converged(instance) and instance["rho"] < 1.0


def evaluate_u1_value(instance: dict) -> Sides:
    """U1 (value): Φ_UFM(solver) = ρ − ρ²/2 (ρ < 1), else ½."""
    from ufm.optima import ufm_optimal_value

    model, solution = instance["_model"], instance["_solution"]
    predicted = ufm_optimal_value(model.num_classes, model.per_class, model.lam_w, model.lam_h)
    return Sides(lhs=solution.loss, rhs=predicted, slack=_value_slack(solution))


def _value_slack(solution) -> float:
    """Allowed |Φ − Φ*| at a point with gradient norm g: 1e-10 (docs/theory.md U1) + 10·g."""
    return 1e-10 + 10.0 * solution.gradient_norm


def _structure_slack(solution) -> float:
    """Allowed deviation of the structure metrics: 1e-6 (docs/theory.md D5) + 1e3·g."""
    return 1e-6 + 1e3 * solution.gradient_norm


def evaluate_u1_structure(instance: dict) -> Sides:
    """U1 (structure): WH = q*Y, MᵀM ∝ I (NC2.orth = 0), W ∝ Mᵀ (NC3.dual = 0),
    λ_WWᵀW = λ_HHHᵀ. The sides are those four deviations (relative) against 0."""
    from ufm.metrics import nc2_orthogonal_frame_distance, nc3_self_duality_distance
    from ufm.optima import predict_ufm

    model, solution = instance["_model"], instance["_solution"]
    point = solution.parameters
    weight, features = point.weights[0], point.features
    prediction = predict_ufm(model.num_classes, model.per_class, model.lam_w, model.lam_h)
    targets = model.targets
    output_error = np.linalg.norm(weight @ features - prediction.q_star * targets) / np.linalg.norm(targets)
    balance = model.lam_w * weight.T @ weight - model.lam_h * features @ features.T
    balance_error = np.linalg.norm(balance) / (model.lam_w * np.linalg.norm(weight) ** 2)
    deviations = np.array([
        output_error,
        nc2_orthogonal_frame_distance(features, model.labels),
        nc3_self_duality_distance(features, model.labels, weights=weight),
        balance_error,
    ])
    return Sides(lhs=deviations, rhs=np.zeros(4), scale=1.0, slack=_structure_slack(solution))


def evaluate_u2_value(instance: dict) -> Sides:
    """U2 (value): Φ_UFM,bias(solver) = ((K−1)/K)·(ρ − ρ²/2) (ρ < 1), else (K−1)/(2K), and b = 1_K/K."""
    from ufm.optima import ufm_optimal_value

    model, solution = instance["_model"], instance["_solution"]
    classes = model.num_classes
    without_bias = ufm_optimal_value(classes, model.per_class, model.lam_w, model.lam_h, bias=False)
    lhs = np.concatenate([[solution.loss], solution.parameters.bias])
    rhs = np.concatenate([[(classes - 1) / classes * without_bias], np.full(classes, 1.0 / classes)])
    return Sides(lhs=lhs, rhs=rhs, scale=1.0, slack=1e3 * solution.gradient_norm + 1e-10)


def evaluate_u2_structure(instance: dict) -> Sides:
    """U2 (structure): μ_G = 0, M simplex ETF (NC2.etf = 0), W ∝ Mᵀ (NC3.dual = 0)."""
    from ufm.metrics import nc2_simplex_etf_distance, nc3_self_duality_distance

    model, solution = instance["_model"], instance["_solution"]
    point = solution.parameters
    features = point.features
    means = features.reshape(features.shape[0], model.num_classes, model.per_class).mean(axis=2)
    global_mean = np.linalg.norm(means.mean(axis=1)) / np.linalg.norm(means)
    deviations = np.array([
        global_mean,
        nc2_simplex_etf_distance(features, model.labels),
        nc3_self_duality_distance(features, model.labels, weights=point.weights[0]),
    ])
    return Sides(lhs=deviations, rhs=np.zeros(3), scale=1.0, slack=_structure_slack(solution))


# ---------------------------------------------------------------------------------------------
# U3
# ---------------------------------------------------------------------------------------------


def sample_u3(draw: Draw) -> dict:
    """A UFM (with or without bias) and a random point."""
    instance = sample_model(draw, ("ufm", "ufm with bias"))
    instance["_point"] = _random_point(instance["_model"], draw)
    return instance


def _u3_terms(instance: dict):
    model, point = instance["_model"], instance["_point"]
    _, gradient = model.value_and_gradient(point)
    weight, features = point.weights[0], point.features
    weight_gradient, feature_gradient = gradient.weights[0], gradient.features
    lhs = model.lam_w * weight.T @ weight - model.lam_h * features @ features.T
    rhs = weight.T @ weight_gradient - feature_gradient @ features.T
    return lhs, rhs, weight, features, weight_gradient, feature_gradient


def evaluate_u3_identity(instance: dict) -> Sides:
    """U3 (identity): λ_WWᵀW − λ_HHHᵀ = Wᵀ∇_W − ∇_HHᵀ (∇ from ``ufm.models.UFM.value_and_gradient``)."""
    lhs, rhs, weight, features, weight_gradient, feature_gradient = _u3_terms(instance)
    model = instance["_model"]
    scale = (model.lam_w * np.linalg.norm(weight) ** 2 + model.lam_h * np.linalg.norm(features) ** 2
             + np.linalg.norm(weight) * np.linalg.norm(weight_gradient)
             + np.linalg.norm(feature_gradient) * np.linalg.norm(features))
    return Sides(lhs=lhs, rhs=rhs, scale=float(scale))


def evaluate_u3_bound(instance: dict) -> Sides:
    """U3 (bound): ‖λ_WWᵀW − λ_HHHᵀ‖_F ≤ ‖W‖_op‖∇_W‖_F + ‖∇_H‖_F‖H‖_op."""
    lhs, _, weight, features, weight_gradient, feature_gradient = _u3_terms(instance)
    rhs = (singular_values(weight)[0] * np.linalg.norm(weight_gradient)
           + np.linalg.norm(feature_gradient) * singular_values(features)[0])
    model = instance["_model"]
    scale = model.lam_w * np.linalg.norm(weight) ** 2 + model.lam_h * np.linalg.norm(features) ** 2
    return Sides(lhs=float(np.linalg.norm(lhs)), rhs=float(rhs), scale=float(scale))


# ---------------------------------------------------------------------------------------------
# U4
# ---------------------------------------------------------------------------------------------


def sample_deep_linear(draw: Draw, solved: bool) -> dict:
    """A deep linear UFM (K ∈ 2..5, n ∈ 1..4, L ∈ 1..4, widths K..K+3); solved by L-BFGS if ``solved``."""
    from ufm.models import DeepLinearUFM
    from ufm.solvers import solve

    classes = draw.integer(2, 5, "K")
    per_class = draw.integer(1, 4, "n")
    depth = draw.integer(1, 4, "L")
    widths = tuple(classes + draw.integer(0, 3, f"d{l + 1} − K") for l in range(depth))
    high = 1e-2 if solved else LAMBDA_RANGE[1]
    lam_h = draw.log_uniform(LAMBDA_RANGE[0], high, "λ_H")
    lams = tuple(draw.log_uniform(LAMBDA_RANGE[0], high, f"λ{l + 1}") for l in range(depth))
    model = DeepLinearUFM(classes, per_class, widths, lam_h, lams)
    instance = {"K": classes, "n": per_class, "L": depth, "widths": widths, "lambda_H": lam_h,
                "lambdas": lams, "_model": model}
    if solved:
        solution = solve(model, "lbfgs", seed=draw.generator, tolerance=1e-11, max_iterations=3000,
                         init_scale=draw.log_uniform(0.3, 2.0, "initialization scale"), predicted=None)
        instance["gradient_norm"] = solution.gradient_norm
        instance["_solution"] = solution
    return instance


def nonzero_optimum(instance: dict) -> bool:
    """Hypothesis: L_DNC < ½ (the optimum is not the zero point)."""
    from ufm.optima import predict_dufm

    model = instance["_model"]
    return not predict_dufm(model.num_classes, model.num_layers, model.per_class, model.lam_h,
                            model.lam_w).is_zero


def evaluate_u4_construction(instance: dict) -> Sides:
    """U4 (construction): Φ_lin(dnc_construct(K, L, n, λ_H, λ, β = 0)) = L_DNC."""
    from ufm.optima import dnc_construct, predict_deep_linear

    model = instance["_model"]
    point = dnc_construct(model.num_classes, model.num_layers, model.per_class, model.lam_h,
                          model.lam_w, widths=model.widths)
    predicted = predict_deep_linear(model.num_classes, model.num_layers, model.per_class, model.lam_h,
                                    model.lam_w).optimal_loss
    return Sides(lhs=model.objective(point).total, rhs=predicted)


def evaluate_u4_lower_bound(instance: dict) -> Sides:
    """U4 (global minimum): L_DNC ≤ Φ_lin at the point L-BFGS reached from a random initialization."""
    from ufm.optima import predict_deep_linear

    model, solution = instance["_model"], instance["_solution"]
    predicted = predict_deep_linear(model.num_classes, model.num_layers, model.per_class, model.lam_h,
                                    model.lam_w).optimal_loss
    gap = solution.loss - predicted
    return Sides(lhs=predicted, rhs=solution.loss, scale=predicted,
                 note=f"Φ − L_DNC = {gap:.3e} ({'reached' if abs(gap) <= 1e-8 else 'not reached'}), "
                 f"‖∇Φ‖ = {solution.gradient_norm:.1e}")


CONSTRUCTION_TOLERANCE = Tolerance(
    relative=1e-12,
    reason="c·u·κ: Φ at the construction is a sum of L+2 positive terms, each a product of O(L) "
    "floating-point factors; q* is accurate to 4u and enters Φ only at second order (g_K'(q*) = 0): "
    "error ≲ 10·L·u ≈ 1e-14, 1e-12 keeps a margin",
)
SCALING_TOLERANCE = Tolerance(
    relative=1e-12,
    reason="the two sides are the same sums evaluated with nλ_H rounded differently (u) and with "
    "n-fold repeated columns summed (error ≲ N·u relative): ≲ 1e-14",
)
GRADIENT_TOLERANCE = Tolerance(
    relative=1e-12,
    reason="c·u·κ with the error measured against the size of the terms that cancel "
    "(λ‖W‖² + λ‖H‖² + ‖W‖‖∇_W‖ + ‖∇_H‖‖H‖): matrix products of at most 12 rows, error ≲ 1e-14",
)
SOLVER_TOLERANCE = Tolerance(
    relative=0.0,
    reason="optimization rule of docs/theory.md §5: the allowance is stated per instance from the "
    "final gradient norm g (value: 1e-10 + 10·g, since Φ − Φ* = O(g²/μ) and the solver stops at "
    "g ≤ 1e-8; structure metrics: 1e-6 + 1e3·g, as they move at first order in the distance to the "
    "optimum set)",
)

SOURCE_UFM = "docs/theory.md §4.1; Zhou et al. 2022 (ICML); Tirer & Bruna 2022 (ICML)"
SOURCE_LINEAR = "docs/theory.md §4.2; Dang et al. 2023 (ICML)"

STATEMENTS = [
    Statement(
        identifier="U0.collapse", title="collapsing to each class's best sample never increases Φ",
        source="docs/theory.md §1.2 and §5 U0", tag="[derived]",
        formula="for fixed weights Φ separates over samples, so replacing every sample of class c by "
        "that class's best sample does not increase Φ",
        relation="<=", sample=sample_u0_collapse, evaluate=evaluate_u0_collapse,
        tolerance=INEQUALITY_TOLERANCE, default_instances=150, hypothesis_examples=20,
        requires=(MODELS,),
    ),
    Statement(
        identifier="U0.scaling", title="collapsed objectives depend on (n, λ_H) through nλ_H",
        source="docs/theory.md §1.2 and §5 U0", tag="[derived]",
        formula="Φ_{n,λ_H}(MY, W) = Φ_{1,nλ_H}(M, W); optimal values of (n, λ_H) and (1, nλ_H) agree",
        relation="=", sample=sample_u0_scaling, evaluate=evaluate_u0_scaling,
        tolerance=SCALING_TOLERANCE, default_instances=100, minimum_held=0.9, hypothesis_examples=15,
        requires=(MODELS, OPTIMA),
    ),
    Statement(
        identifier="U1.value", title="UFM without bias: solver value equals the closed form",
        source=SOURCE_UFM, tag="[derived]",
        formula="min Φ_UFM = ρ − ρ²/2 if ρ = K√(nλ_Wλ_H) < 1, else ½",
        relation="=", sample=lambda draw: sample_solved_ufm(draw, bias=False),
        evaluate=evaluate_u1_value, hypotheses=solver_converged, tolerance=SOLVER_TOLERANCE,
        default_instances=25, minimum_held=0.8, requires=(MODELS, OPTIMA, SOLVERS),
    ),
    Statement(
        identifier="U1.structure", title="UFM without bias: WH = q*Y, orthogonal frame, self-duality",
        source=SOURCE_UFM, tag="[derived]",
        formula="WH = q*Y, MᵀM ∝ I_K, W = √(nλ_H/λ_W)·Mᵀ, λ_WWᵀW = λ_HHHᵀ",
        relation="=", sample=lambda draw: sample_solved_ufm(draw, bias=False),
        evaluate=evaluate_u1_structure, hypotheses=converged_with_nonzero_optimum,
        tolerance=SOLVER_TOLERANCE, default_instances=25, minimum_held=0.6,
        requires=(MODELS, OPTIMA, SOLVERS, METRICS),
    ),
    Statement(
        identifier="U2.value", title="UFM with bias: value (K−1)/K × U1's and b* = 1_K/K",
        source=SOURCE_UFM, tag="[derived]",
        formula="min Φ_UFM,bias = ((K−1)/K)(ρ − ρ²/2) for ρ < 1, else (K−1)/(2K); b* = 1_K/K",
        relation="=", sample=lambda draw: sample_solved_ufm(draw, bias=True),
        evaluate=evaluate_u2_value, hypotheses=solver_converged, tolerance=SOLVER_TOLERANCE,
        default_instances=25, minimum_held=0.8, requires=(MODELS, OPTIMA, SOLVERS),
    ),
    Statement(
        identifier="U2.structure", title="UFM with bias: simplex ETF, μ_G = 0, self-duality",
        source=SOURCE_UFM, tag="[derived]",
        formula="μ_G = 0, M̄ᵀM̄ ∝ P_K (simplex ETF), W = √(nλ_H/λ_W)Mᵀ",
        relation="=", sample=lambda draw: sample_solved_ufm(draw, bias=True),
        evaluate=evaluate_u2_structure, hypotheses=converged_with_nonzero_optimum,
        tolerance=SOLVER_TOLERANCE, default_instances=25, minimum_held=0.6,
        requires=(MODELS, OPTIMA, SOLVERS, METRICS),
    ),
    Statement(
        identifier="U3.identity", title="UFM balancedness identity at any point",
        source="docs/theory.md §5 U3", tag="[derived]",
        formula="λ_WWᵀW − λ_HHHᵀ = Wᵀ∇_W − ∇_HHᵀ",
        relation="=", sample=sample_u3, evaluate=evaluate_u3_identity, tolerance=GRADIENT_TOLERANCE,
        default_instances=150, minimum_held=0.9, hypothesis_examples=20, requires=(MODELS,),
    ),
    Statement(
        identifier="U3.bound", title="UFM balancedness bound by the gradient",
        source="docs/theory.md §5 U3", tag="[derived]",
        formula="‖λ_WWᵀW − λ_HHHᵀ‖_F ≤ ‖W‖_op‖∇_W‖_F + ‖∇_H‖_F‖H‖_op",
        relation="<=", sample=sample_u3, evaluate=evaluate_u3_bound, tolerance=INEQUALITY_TOLERANCE,
        default_instances=150, hypothesis_examples=20, requires=(MODELS,),
    ),
    Statement(
        identifier="U4.construction", title="deep linear UFM: the construction attains L_DNC",
        source=SOURCE_LINEAR, tag="[derived]",
        formula="Φ_lin(dnc_construct(K, L, n, λ_H, λ, β = 0)) = L_DNC(K, L, n, λ_H, λ_{1..L})",
        relation="=", sample=lambda draw: sample_deep_linear(draw, solved=False),
        evaluate=evaluate_u4_construction, hypotheses=nonzero_optimum,
        tolerance=CONSTRUCTION_TOLERANCE, default_instances=100, minimum_held=0.2,
        hypothesis_examples=15, requires=(MODELS, OPTIMA),
    ),
    Statement(
        identifier="U4.minimum", title="deep linear UFM: no solver end point lies below L_DNC",
        source=SOURCE_LINEAR, tag="[derived]",
        formula="min Φ_lin = L_DNC: L_DNC ≤ Φ_lin(θ) at every point reached from random initializations",
        relation="<=", sample=lambda draw: sample_deep_linear(draw, solved=True),
        evaluate=evaluate_u4_lower_bound, tolerance=INEQUALITY_TOLERANCE,
        default_instances=20, requires=(MODELS, OPTIMA, SOLVERS),
    ),
]

