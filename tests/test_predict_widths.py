"""Predictions at bottlenecked widths (d < K, or a layer narrower than K).

- The rank-limited closed forms of ``ufm.optima`` (UFM with and without bias, deep linear UFM)
  against numerical minimization (L-BFGS from several seeds) on random small instances, and
  against their explicit constructions.
- Which model a prediction holds for: ``widths``, ``rank_limit``, ``kind``, ``reachable``,
  ``holds_for``; the ReLU DUFM below the widths of a DNC point is flagged as not reachable.
- The command line: ``predict`` honours ``--d``/``--width``, ``solve`` labels its reference by the
  model's widths, and count options below their minimum are rejected in one line (exit 2).
"""

import json
import math

import numpy as np
import pytest

from ufm import cli
from ufm import optima as O
from ufm.models import DeepLinearUFM, DeepUFM, UFM
from ufm.solvers import solve

EPS = np.finfo(np.float64).eps

#: Rounding allowance of Φ in float64. These instances have at most ~200 summed terms (K·N ≤ 75
#: residual entries and ≤ 130 parameters), each ≤ 1, so evaluating Φ (or the closed form) carries
#: a worst-case relative error of about 200·u ≈ 2.2e-14 with Φ ≤ ½; 1e-13 covers both sides.
ROUNDING = 1e-13

#: Gradient-norm stop of the solver runs (``solve(..., tolerance=...)``).
GRADIENT_TOLERANCE = 1e-10


def run_cli(capsys, *arguments):
    code = cli.main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def value_of_rho(rho: float) -> float:
    """v(ρ) = ρ − ρ²/2 for ρ < 1, else ½ (docs/theory.md §4.1): the cost of one direction times K."""
    return rho - rho * rho / 2 if rho < 1 else 0.5


def smallest_positive_curvature(model, point) -> float:
    """μ₊, the smallest nonzero eigenvalue of the Hessian of Φ at ``point``.

    Central differences of the analytic gradient (step 1e-5: truncation ~1e-10·‖∇³Φ‖, rounding
    ~eps·‖∇Φ‖/1e-5), symmetrized. The minimizers form a manifold (rotations of the inner
    dimensions, choice of the fitted directions), whose tangent directions give zero eigenvalues;
    eigenvalues below 1e-6 of the largest are counted as zero.
    """
    vector = point.flatten()
    size = vector.size
    hessian = np.empty((size, size))
    step = 1e-5
    for i in range(size):
        shift = np.zeros(size)
        shift[i] = step
        plus = model.value_and_gradient_vector(vector + shift)[1]
        minus = model.value_and_gradient_vector(vector - shift)[1]
        hessian[:, i] = (plus - minus) / (2 * step)
    eigenvalues = np.linalg.eigvalsh(0.5 * (hessian + hessian.T))
    assert eigenvalues[0] >= -1e-6 * eigenvalues[-1]  # a minimum: no negative curvature
    return float(eigenvalues[eigenvalues > 1e-6 * eigenvalues[-1]][0])


def assert_closed_form_is_the_numerical_minimum(model, closed_form, seeds=range(4)):
    """Every L-BFGS run ends at Φ ≥ closed form − ROUNDING (it is a lower bound), and the best one
    reaches it within ROUNDING + g²/(2μ₊).

    Reach tolerance: at a point with gradient norm g near the minimizing manifold (Morse–Bott:
    nondegenerate across it), Φ − Φ* ≤ g²/(2μ₊) to second order, μ₊ the smallest positive
    Hessian eigenvalue there (computed at the constructed optimum; all minimizers are images of
    it under norm-preserving symmetries, so they share μ₊). With g ≤ GRADIENT_TOLERANCE = 1e-10
    and μ₊ ≥ 1e-4 on these instances this term is ≤ 5e-17: the rounding of Φ dominates.
    """
    point = O.optimal_parameters(model)
    constructed = model.objective(point).total
    # Construction identity: the closed form is attained (≈ 10² float64 operations).
    assert abs(constructed - closed_form) <= ROUNDING
    mu = smallest_positive_curvature(model, point)
    assert mu >= 1e-4
    runs = [solve(model, "lbfgs", seed=seed, tolerance=GRADIENT_TOLERANCE) for seed in seeds]
    for run in runs:
        assert run.loss >= closed_form - ROUNDING, (run.loss, closed_form)
    best = min(runs, key=lambda run: run.loss)
    assert best.converged and best.gradient_norm <= GRADIENT_TOLERANCE
    tolerance = ROUNDING + best.gradient_norm**2 / (2 * mu)
    assert best.loss - closed_form <= tolerance, (best.loss, closed_form, tolerance)


# ------------------------------------------------------------------------------------------
# Rank-limited closed forms against numerical minimization
# ------------------------------------------------------------------------------------------


def _ufm_instances(count: int = 8):
    rng = np.random.default_rng(20261126)
    for _ in range(count):
        k = int(rng.integers(2, 6))  # K ∈ 2..5
        n = int(rng.integers(1, 4))
        d = int(rng.integers(1, k))  # d < K
        lam_w, lam_h = 10 ** rng.uniform(-3, -1.5, size=2)
        yield k, n, d, float(lam_w), float(lam_h)
    yield 4, 2, 2, 0.3, 0.3  # ρ = 4·√(2·0.09) ≈ 1.7 ≥ 1: the zero solution


@pytest.mark.parametrize("K, n, d, lam_w, lam_h", list(_ufm_instances()))
def test_ufm_without_bias_below_K_is_the_rank_limited_minimum(K, n, d, lam_w, lam_h):
    """min Φ_UFM at d < K = (d/K)·v(ρ) + (K − d)/(2K) [derived, ufm.optima.ufm_optimal_value]."""
    rho = K * math.sqrt(n * lam_w * lam_h)
    closed_form = d / K * value_of_rho(rho) + (K - d) / (2 * K)
    model = UFM(K, n, d, lam_w, lam_h)
    prediction = O.predict(model)
    assert abs(prediction.optimal_loss - closed_form) <= 8 * EPS
    assert O.ufm_optimal_value(K, n, lam_w, lam_h, width=d) == prediction.optimal_loss
    assert prediction.widths == (d,) and prediction.rank_limit == d
    assert prediction.kind == "global_optimum" and prediction.reachable
    assert_closed_form_is_the_numerical_minimum(model, closed_form)


@pytest.mark.parametrize("K, n, d, lam_w, lam_h", [c for c in _ufm_instances() if c[0] >= 3])
def test_ufm_with_bias_keeps_min_d_of_the_K_minus_1_centred_directions(K, n, d, lam_w, lam_h):
    """With bias YP_N has K − 1 singular values √n: r = min(d, K − 1) directions are kept,
    min Φ = (r/K)·v(ρ) + (K − 1 − r)/(2K) [derived]; d = K − 1 is the full value (K−1)/K·v(ρ)."""
    rho = K * math.sqrt(n * lam_w * lam_h)
    rank = min(d, K - 1)
    closed_form = rank / K * value_of_rho(rho) + (K - 1 - rank) / (2 * K)
    model = UFM(K, n, d, lam_w, lam_h, bias=True)
    prediction = O.predict(model)
    assert abs(prediction.optimal_loss - closed_form) <= 8 * EPS
    assert prediction.rank_limit == rank and prediction.model == "ufm_bias"
    if d == K - 1:
        assert prediction.optimal_loss == O.ufm_optimal_value(K, n, lam_w, lam_h, bias=True)
    assert_closed_form_is_the_numerical_minimum(model, closed_form)


def _deep_linear_instances(count: int = 6):
    rng = np.random.default_rng(112026)
    for _ in range(count):
        k = int(rng.integers(2, 6))
        n = int(rng.integers(1, 3))
        depth = int(rng.integers(2, 4))
        widths = [int(rng.integers(1, k + 2)) for _ in range(depth)]
        if min(widths) >= k:  # make one layer the bottleneck
            widths[int(rng.integers(0, depth))] = int(rng.integers(1, k))
        lams = 10 ** rng.uniform(-3, -2, size=depth + 1)
        yield k, n, tuple(widths), float(lams[0]), tuple(float(v) for v in lams[1:])


@pytest.mark.parametrize("K, n, widths, lam_h, lam_w", list(_deep_linear_instances()))
def test_deep_linear_below_K_is_the_rank_limited_minimum(K, n, widths, lam_h, lam_w):
    """r = min(widths) < K: min Φ_lin = (r/K)·L_DNC + (K − r)/(2K) [derived]."""
    rank = min(widths)
    depth = len(widths)
    dnc = O.predict_deep_linear(K, depth, n, lam_h, lam_w).optimal_loss
    closed_form = rank / K * dnc + (K - rank) / (2 * K)
    model = DeepLinearUFM(K, n, widths, lam_h, lam_w)
    prediction = O.predict(model)
    assert abs(prediction.optimal_loss - closed_form) <= 8 * EPS
    assert prediction.widths == widths and prediction.rank_limit == rank
    assert prediction.kind == "global_optimum" and prediction.reachable
    assert_closed_form_is_the_numerical_minimum(model, closed_form)


def test_rank_limited_structure_of_the_prediction():
    """r of the singular values of every W_l, RMS class-mean norms ×(r/m)^{1/2}, BAL ×r/m; the
    construction has exactly these (docs/theory.md §4.2 structure on r directions)."""
    K, n, widths, lam_h, lam_w = 5, 2, (3, 4), 0.004, (0.002, 0.006)
    full = O.predict_deep_linear(K, 2, n, lam_h, lam_w)
    narrow = O.predict_deep_linear(K, 2, n, lam_h, lam_w, widths=widths)
    assert narrow.q_star == full.q_star
    assert narrow.singular_values == tuple(values[:3] for values in full.singular_values)
    np.testing.assert_allclose(narrow.balancedness, np.array(full.balancedness) * 3 / 5, rtol=1e-15)
    model = DeepLinearUFM(K, n, widths, lam_h, lam_w)
    point = O.optimal_parameters(model)
    parts = model.objective(point)
    np.testing.assert_allclose(2 * np.array(parts.penalties), narrow.balancedness, rtol=1e-13)
    for index, weight in enumerate(point.weights):
        singular = np.linalg.svd(weight, compute_uv=False)
        np.testing.assert_allclose(singular[:3], narrow.singular_values[index], rtol=1e-13)
        assert np.all(singular[3:] <= 1e-15)
    means = point.features[:, ::n]
    rms = math.sqrt(np.sum(means**2) / K)
    assert rms == pytest.approx(narrow.class_mean_norms[0], rel=1e-14)
    assert model.gradient(point).norm() <= 1e-12


def test_rank_limited_value_formula():
    assert O.rank_limited_value(0.2, 5, 5) == 0.2
    assert O.rank_limited_value(0.2, 5, 9) == 0.2
    assert O.rank_limited_value(0.2, 5, 2) == pytest.approx(2 / 5 * 0.2 + 3 / 10, rel=1e-15)
    # With bias m = K − 1 = 4 directions; Φ_full = (4/5)·v.
    expected = 2 / 4 * 0.16 + 2 / 10
    assert O.rank_limited_value(0.16, 5, 2, bias=True) == pytest.approx(expected, rel=1e-15)
    # ρ ≥ 1: every width gives ½ (no bias) or (K − 1)/(2K) (bias).
    assert O.ufm_optimal_value(5, 2, 0.5, 0.5, width=2) == pytest.approx(0.5, rel=1e-15)
    assert O.ufm_optimal_value(5, 2, 0.5, 0.5, bias=True, width=2) == pytest.approx(0.4, rel=1e-15)


# ------------------------------------------------------------------------------------------
# The ReLU DUFM: which widths reach L_DNC
# ------------------------------------------------------------------------------------------


def test_dnc_min_widths():
    assert O.dnc_min_widths(5, 1) == (5,)
    assert O.dnc_min_widths(5, 3) == (3, 5, 5)
    assert O.dnc_min_widths(4, 2) == (2, 4)
    assert O.dnc_min_widths(2, 4) == (1, 2, 2, 2)


@pytest.mark.parametrize("K", [2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("L", [2, 3])
def test_dufm_reaches_l_dnc_with_half_the_first_width(K, L):
    """d_1 = ⌈K/2⌉, d_l = K: the paired pre-image point has value L_DNC (identity, 1e-12
    relative as D1), is critical, and its M₂ is an orthogonal frame."""
    n, lam_h, lam_w = 2, 0.003, 0.002
    widths = O.dnc_min_widths(K, L)
    model = DeepUFM(K, n, widths, lam_h, lam_w)
    prediction = O.predict(model)
    assert prediction.reachable and prediction.widths == widths
    assert prediction.kind == ("global_optimum" if K == 2 else "dnc_reference")
    point = O.optimal_parameters(model)
    assert point.features.shape == (-(-K // 2), K * n)
    total = model.objective(point).total
    assert abs(total - prediction.optimal_loss) <= 1e-12 * prediction.optimal_loss
    assert model.gradient(point).norm() <= 1e-12
    second = model.forward(point).post_activations[1][:, ::n]
    gram = second.T @ second
    np.testing.assert_allclose(gram, prediction.second_layer_mean_norm**2 * np.eye(K), atol=1e-15)


@pytest.mark.parametrize(
    "K, widths",
    [(4, (1, 4)), (5, (2, 5, 5)), (5, (5, 4, 5)), (3, (3, 3, 2)), (2, (2, 1)), (5, (3, 3, 3))],
)
def test_dufm_without_a_dnc_point_is_flagged_not_reachable(K, widths):
    lam = 0.004
    model = DeepUFM(K, 1, widths, lam, lam)
    prediction = O.predict(model)
    reference = O.predict_dufm(K, len(widths), 1, lam, lam)
    assert prediction.optimal_loss == reference.optimal_loss  # L_DNC, kept as a reference
    assert not prediction.reachable and prediction.kind == "unreachable_reference"
    assert "not reachable" in prediction.holds_for and str(list(widths)) in prediction.holds_for
    with pytest.raises(ValueError, match=r"widths\[\d\]"):
        O.optimal_parameters(model)


def test_dufm_zero_solution_is_reachable_at_any_width():
    model = DeepUFM(3, 3, (1, 1), 1.0, 1.0)  # far above the threshold: q* = 0
    prediction = O.predict(model)
    assert prediction.is_zero and prediction.reachable and prediction.optimal_loss == 0.5
    point = O.optimal_parameters(model)
    assert model.objective(point).total == 0.5


def test_one_layer_dufm_below_K_is_the_ufm():
    """L = 1 has no ReLU: DeepUFM((d,)) is the UFM without bias, rank-limited for d < K."""
    dufm = DeepUFM(4, 2, (2,), 0.01, 0.02)
    ufm = UFM(4, 2, 2, 0.02, 0.01)
    assert O.predict(dufm).optimal_loss == pytest.approx(O.predict(ufm).optimal_loss, rel=1e-15)
    assert O.predict(dufm).kind == "global_optimum" and O.predict(dufm).rank_limit == 2
    point = O.optimal_parameters(dufm)
    assert abs(dufm.objective(point).total - O.predict(dufm).optimal_loss) <= ROUNDING


# ------------------------------------------------------------------------------------------
# Which model a prediction holds for
# ------------------------------------------------------------------------------------------


def test_width_free_predictions_say_so():
    prediction = O.predict_ufm(5, 4, 0.01, 0.01)
    assert prediction.widths is None and prediction.rank_limit == 5
    assert "any width d >= K = 5" in prediction.holds_for
    biased = O.predict_ufm(5, 4, 0.01, 0.01, bias=True)
    assert biased.rank_limit == 4 and "d >= K - 1 = 4" in biased.holds_for
    dufm = O.predict_dufm(3, 3, 1, 0.004, 0.004)
    assert dufm.kind == "dnc_reference" and "d_1 >= 2" in dufm.holds_for
    assert O.predict_dufm(2, 3, 1, 0.004, 0.004).kind == "global_optimum"
    # A width ≥ K changes nothing but the stated widths.
    wide = O.predict_ufm(5, 4, 0.01, 0.01, width=7)
    assert wide.optimal_loss == prediction.optimal_loss and wide.widths == (7,)


def test_prediction_json_states_the_model():
    prediction = O.predict_deep_linear(4, 2, 3, 0.01, 0.01, widths=(2, 5))
    data = json.loads(json.dumps(prediction.to_dict()))
    assert data["widths"] == [2, 5] and data["rank_limit"] == 2
    assert data["kind"] == "global_optimum" and data["reachable"] is True
    assert data["holds_for"] == prediction.holds_for and "2 of the 4" in data["holds_for"]
    assert data["kind"] in O.PREDICTION_KINDS
    assert O.predict_dufm(4, 2, 3, 0.01, 0.01, widths=3).widths == (3, 3)


# ------------------------------------------------------------------------------------------
# Command line: the three reported cases
# ------------------------------------------------------------------------------------------


def test_predict_ufm_honours_d(capsys):
    """Case 1: ``predict ufm --K 5 --n 4 --d 2`` used to print the d ≥ K value."""
    arguments = ("predict", "ufm", "--K", "5", "--n", "4", "--lam-h", "0.01", "--lam-w", "0.01")
    code, out, _ = run_cli(capsys, *arguments, "--d", "2", "--json")
    assert code == 0
    data = json.loads(out)
    rho = 5 * math.sqrt(4 * 0.01 * 0.01)  # 0.2
    assert data["optimal_loss"] == pytest.approx(2 / 5 * (rho - rho**2 / 2) + 3 / 10, rel=1e-15)
    assert data["widths"] == [2] and data["rank_limit"] == 2
    assert data == json.loads(json.dumps(O.predict_ufm(5, 4, 0.01, 0.01, width=2).to_dict()))
    code, out, _ = run_cli(capsys, *arguments, "--json")
    assert json.loads(out)["optimal_loss"] == pytest.approx(rho - rho**2 / 2, rel=1e-15)
    assert json.loads(out)["widths"] is None
    code, table, _ = run_cli(capsys, *arguments, "--d", "2")
    assert code == 0 and "holds for: UFM without bias (K = 5), width d = 2" in table


def test_predict_deep_models_honour_width(capsys):
    common = ("--K", "4", "--L", "2", "--n", "3", "--lam-h", "0.01", "--lam-w", "0.01")
    code, out, _ = run_cli(capsys, "predict", "deep-linear", *common, "--width", "2", "--json")
    assert code == 0
    expected = O.predict_deep_linear(4, 2, 3, 0.01, 0.01, widths=(2, 2))
    assert json.loads(out) == json.loads(json.dumps(expected.to_dict()))
    assert expected.rank_limit == 2
    code, out, _ = run_cli(capsys, "predict", "dufm", *common, "--width", "3", "--json")
    data = json.loads(out)
    assert data["kind"] == "unreachable_reference" and data["reachable"] is False
    assert data["widths"] == [3, 3]
    code, table, _ = run_cli(capsys, "predict", "dufm", *common, "--width", "3")
    assert code == 0 and "NOT REACHABLE" in table and "widths [3, 3]" in table


def test_solve_labels_the_reference_by_the_models_widths(capsys, tmp_path):
    """Case 2: ``solve`` with d < K (UFM) or width < K (deep linear) used to call the d ≥ K value
    ``global_optimum``; the reference is now the rank-limited minimum of the model solved."""
    code, out, _ = run_cli(capsys, "solve", "ufm", "--K", "5", "--n", "4", "--d", "2",
                           "--lam-h", "0.01", "--lam-w", "0.01", "--json", "--save", str(tmp_path))
    assert code == 0
    data = json.loads(out)  # with --json the "wrote" lines go to stderr
    predicted = data["predicted"]["optimal_loss"]
    assert predicted == O.ufm_optimal_value(5, 4, 0.01, 0.01, width=2)
    assert data["predicted_kind"] == "global_optimum" and data["predicted"]["widths"] == [2]
    # A proven minimum: not below it beyond rounding, and reached from seed 0 within
    # ROUNDING + g²/(2μ₊) (as in assert_closed_form_is_the_numerical_minimum).
    model = UFM(5, 4, 2, 0.01, 0.01)
    mu = smallest_positive_curvature(model, O.optimal_parameters(model))
    gradient = data["found"]["gradient_norm"]
    assert data["found"]["stop_reason"] == "gradient_tolerance"
    assert data["found"]["loss"] >= predicted - ROUNDING
    assert data["found"]["loss"] - predicted <= ROUNDING + gradient**2 / (2 * mu)
    saved = json.loads((tmp_path / "solution.json").read_text())
    assert saved["solution"]["predicted_kind"] == "global_optimum"
    assert saved["solution"]["predicted_loss"] == predicted

    code, out, _ = run_cli(capsys, "solve", "deep-linear", "--K", "4", "--L", "2", "--n", "2",
                           "--width", "2", "--lam-h", "0.01", "--lam-w", "0.01", "--restarts", "3",
                           "--json")
    assert code == 0
    data = json.loads(out)
    dnc = O.predict_deep_linear(4, 2, 2, 0.01, 0.01).optimal_loss
    assert data["predicted"]["optimal_loss"] == pytest.approx(2 / 4 * dnc + 2 / 8, rel=1e-15)
    assert data["found"]["loss"] >= data["predicted"]["optimal_loss"] - ROUNDING

    code, out, _ = run_cli(capsys, "solve", "dufm", "--K", "4", "--L", "2", "--n", "1",
                           "--width", "3", "--lam-h", "0.004", "--lam-w", "0.004",
                           "--max-iterations", "200")
    assert code == 0
    assert "predicted (unreachable_reference)" in out and "NOT REACHABLE" in out
    assert "global_optimum" not in out


COUNT_CASES = [  # (arguments, option, minimum)
    (("solve", "ufm", "--restarts", "0"), "--restarts", 1),
    (("solve", "ufm", "--restarts", "-2"), "--restarts", 1),
    (("solve", "ufm", "--max-iterations", "0"), "--max-iterations", 1),
    (("solve", "ufm", "--seed", "-1"), "--seed", 0),
    (("solve", "ufm", "--d", "0"), "--d", 1),
    (("predict", "ufm", "--d", "-3"), "--d", 1),
    (("predict", "ufm", "--n", "0"), "--n", 1),
    (("predict", "ufm", "--K", "1"), "--K", 2),
    (("predict", "dufm", "--L", "0"), "--L", 1),
    (("predict", "deep-linear", "--width", "0"), "--width", 1),
    (("solve", "dufm", "--width", "-1"), "--width", 1),
    (("metrics-demo", "--seed", "-5"), "--seed", 0),
]


def _complete(arguments):
    """Fill in the required model options that ``arguments`` does not set."""
    command = list(arguments)
    if command[0] == "metrics-demo":
        return command
    defaults = {"--K": "3", "--n": "2", "--lam-h": "0.01", "--lam-w": "0.01"}
    if command[1] != "ufm":
        defaults["--L"] = "2"
    for flag, value in defaults.items():
        if flag not in command:
            command += [flag, value]
    return command


@pytest.mark.parametrize("arguments, option, minimum", COUNT_CASES)
def test_count_options_below_their_minimum_are_one_line_errors(capsys, arguments, option, minimum):
    """Case 3: ``--restarts 0`` / ``--restarts -2`` used to run once. Every count option is
    rejected before any work: exit status 2, one line on stderr naming the option and its
    minimum, no traceback."""
    code, out, err = run_cli(capsys, *_complete(arguments))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert option in lines[0] and f">= {minimum}" in lines[0]
    assert "Traceback" not in err
