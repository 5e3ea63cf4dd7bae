"""Method "global" of ufm.solve: the global minimum where the theory knows it, below L_DNC where
low-rank points exist, never above a construction, every basin reported (docs/theory.md §4.3–4.6)."""

from __future__ import annotations

import numpy as np
import pytest
from process_tree import HAS_PROC, workers_of_killed_command

from ufm import optima
from ufm.cli import main
from ufm.models import DeepLinearUFM, DeepUFM, UFM
from ufm.solvers import METHODS, default_method, solve
from ufm.solvers.global_search import class_mean_ranks, embed_parameters, start_points

# The closed forms are evaluated in float64 and the local runs stop at ‖∇Φ‖ ≤ 1e-10 (or at the
# float64 floor of Φ); at a nondegenerate minimum Φ − Φ* ≤ ‖∇Φ‖²/(2μ) with μ ≥ 1e-3 on these
# instances, far below 1e-8 relative: the requirement is the tolerance.
RELATIVE = 1e-8


def dufm(K, L, n, lam, width=30):
    return DeepUFM(num_classes=K, per_class=n, widths=(width,) * L, lam_h=lam, lam_w=(lam,) * L)


def test_auto_is_global_for_the_deep_models():
    assert "global" in METHODS and "auto" in METHODS
    assert default_method(dufm(2, 2, 1, 0.01, width=4)) == "global"
    assert default_method(DeepLinearUFM(2, 1, (3, 3), 0.01, 0.01)) == "global"
    assert default_method(UFM(3, 2, 3, 0.01, 0.01)) == "lbfgs"


@pytest.mark.parametrize(
    "K, L, n, lam",
    [
        (2, 5, 1, 0.0087),  # the default used to end at a one-class point, Φ = 0.27602 (430% above)
        (2, 3, 2, 0.1130),  # just below the zero-solution threshold: it used to end at 0.5
    ],
)
def test_default_finds_the_proven_optimum_where_it_used_to_fail(K, L, n, lam):
    model = dufm(K, L, n, lam, width=10)
    predicted = optima.predict(model)
    assert predicted.kind == "global_optimum" and predicted.optimal_loss < 0.5
    solution = solve(model, seed=0, progress=False)
    assert solution.method == "global"
    assert abs(solution.loss - predicted.optimal_loss) <= RELATIVE * predicted.optimal_loss
    # The result is a point of the model with that value, not a number copied from the prediction.
    assert model.objective(solution.parameters).total == pytest.approx(solution.loss, rel=1e-14)


def test_cli_default_reports_the_optimum_and_the_basins(capsys):
    code = main(["solve", "dufm", "--K", "2", "--L", "5", "--n", "1", "--lam-h", "0.0087",
                 "--lam-w", "0.0087", "--json"])
    assert code == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["found"]["method"] == "global"
    assert abs(result["gap_to_predicted"]) <= RELATIVE * result["predicted"]["optimal_loss"]
    basins = result["found"]["basins"]
    assert basins and basins[0]["loss"] == pytest.approx(result["found"]["loss"], rel=1e-12)
    assert [b["loss"] for b in basins] == sorted(b["loss"] for b in basins)


@pytest.mark.parametrize(
    "K, lam, known",
    [
        # docs/theory.md §4.6: points 2.2–2.8% below L_DNC, rank 2–3 before the last ReLU.
        (3, 0.0041, 0.0299826),
        (4, 0.0049, None),  # several basins 1.7–2.8% below L_DNC; which one is found varies
    ],
)
def test_default_goes_below_dnc_at_depth_four(K, lam, known):
    model = dufm(K, 4, 1, lam, width=30)
    l_dnc = optima.predict(model).optimal_loss
    solution = solve(model, seed=0, progress=False)
    # The known low-rank points are ≥ 1.7% below L_DNC; ending at DNC (ratio 1) fails this.
    assert solution.loss < 0.99 * l_dnc
    if known is not None:  # the one minimum of §4.6 (two codes agreed to 5 digits)
        assert solution.loss <= known * (1 + 1e-4)
    assert solution.basins[0].ranks[-1] < K  # rank of M̃_4 below K: a low-rank point
    assert any(basin.loss == pytest.approx(l_dnc, rel=1e-6) for basin in solution.basins)


@pytest.mark.parametrize("index", range(4))
def test_random_k2_dufm_instances_reach_the_prediction(index):
    rng = np.random.default_rng(1000 + index)
    L = int(rng.integers(2, 5))
    n = int(rng.integers(1, 4))
    lam_h = float(10 ** rng.uniform(-3, -1.3))
    lam_w = tuple(float(10 ** rng.uniform(-3, -1.3)) for _ in range(L))
    model = DeepUFM(2, n, (int(rng.integers(4, 9)),) * L, lam_h, lam_w)
    predicted = optima.predict(model)
    assert predicted.kind == "global_optimum"
    solution = solve(model, seed=index, progress=False)
    assert abs(solution.loss - predicted.optimal_loss) <= RELATIVE * predicted.optimal_loss


@pytest.mark.parametrize("index", range(4))
def test_random_deep_linear_instances_reach_the_prediction(index):
    rng = np.random.default_rng(2000 + index)
    K = int(rng.integers(2, 5))
    L = int(rng.integers(1, 4))
    n = int(rng.integers(1, 4))
    lam_h = float(10 ** rng.uniform(-3, -1.3))
    lam_w = tuple(float(10 ** rng.uniform(-3, -1.3)) for _ in range(L))
    model = DeepLinearUFM(K, n, (K + int(rng.integers(0, 4)),) * L, lam_h, lam_w)
    predicted = optima.predict(model)
    assert predicted.kind == "global_optimum"
    solution = solve(model, seed=index, progress=False)
    assert abs(solution.loss - predicted.optimal_loss) <= RELATIVE * predicted.optimal_loss


def test_never_above_a_given_start_or_construction():
    model = dufm(3, 3, 1, 0.004, width=6)
    rng = np.random.default_rng(5)
    given = model.random_parameters(rng, 1.0)
    constructions = start_points(model, [given])
    assert [kind for kind, _ in constructions][:2] == ["given", "dnc"]
    solution = solve(model, "global", seed=0, starts=[given], max_starts=3, progress=False)
    for _, params in constructions:
        assert solution.loss <= model.objective(params).total


def test_basins_sum_to_the_starts_and_are_sorted():
    model = dufm(3, 3, 1, 0.004, width=6)
    seen = []
    solution = solve(model, "global", seed=1, max_starts=10, patience=10, progress=False,
                     callback=lambda done, best: seen.append((done, best)))
    assert solution.stop_reason == "max_starts"
    # callback(0, best construction) first, then once per start
    assert seen[0][0] == 0 and [done for done, _ in seen[1:]] == list(range(1, 11))
    assert sum(basin.count for basin in solution.basins) == 10
    losses = [basin.loss for basin in solution.basins]
    assert losses == sorted(losses) and losses[0] == solution.loss
    assert all(len(basin.ranks) == 4 for basin in solution.basins)  # M_1..M_3 and M̃_3
    assert [best for _, best in seen] == sorted((best for _, best in seen), reverse=True)
    assert solution.to_dict(include_parameters=False)["basins"][0]["loss"] == solution.loss


def test_deterministic_for_a_seed_and_worker_count():
    model = dufm(3, 3, 1, 0.004, width=6)
    first = solve(model, "global", seed=3, max_starts=8, progress=False)
    again = solve(model, "global", seed=3, max_starts=8, progress=False)
    assert first.loss == again.loss and first.basins == again.basins
    assert np.array_equal(first.parameters.flatten(), again.parameters.flatten())


def test_two_workers_match_each_other():
    model = dufm(3, 3, 1, 0.004, width=6)
    first = solve(model, "global", seed=3, max_starts=6, workers=2, progress=False)
    again = solve(model, "global", seed=3, max_starts=6, workers=2, progress=False)
    assert first.loss == again.loss and first.basins == again.basins


def test_time_budget_still_runs_the_constructions():
    model = dufm(2, 3, 1, 0.01, width=4)
    solution = solve(model, "global", seed=0, time_budget=1e-9, progress=False)
    assert solution.stop_reason == "time_budget"
    predicted = optima.predict(model).optimal_loss
    assert abs(solution.loss - predicted) <= RELATIVE * predicted


def test_embedding_keeps_the_value():
    narrow = dufm(3, 3, 2, 0.01, width=4)
    wide = dufm(3, 3, 2, 0.01, width=7)
    params = narrow.random_parameters(np.random.default_rng(0), 1.0)
    embedded = embed_parameters(params, wide)
    wide.check_parameters(embedded)
    # Zero rows and columns add exact zeros to every sum: only the summation order of BLAS may
    # differ, a few ulps of Φ.
    assert wide.objective(embedded).total == pytest.approx(narrow.objective(params).total,
                                                           rel=1e-13)


def test_rank_profile_of_the_dnc_point():
    model = dufm(4, 3, 2, 0.01, width=6)
    assert class_mean_ranks(model, optima.optimal_parameters(model)) == (4, 4, 4, 4)


@pytest.mark.parametrize(
    "options, name",
    [
        ({"max_starts": 0}, "max_starts"),
        ({"patience": 0}, "patience"),
        ({"time_budget": 0.0}, "time_budget"),
        ({"basin_tolerance": 1.5}, "basin_tolerance"),
        ({"workers": 0}, "workers"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options_are_named(options, name):
    model = dufm(2, 2, 1, 0.01, width=3)
    with pytest.raises(ValueError, match=name):
        solve(model, "global", progress=False, **options)


def test_bad_starts_are_named():
    model = dufm(2, 2, 1, 0.01, width=3)
    with pytest.raises(TypeError, match="starts"):
        solve(model, "global", starts=[np.zeros(3)], progress=False)
    other = dufm(2, 2, 1, 0.01, width=4).random_parameters(0)
    with pytest.raises(ValueError):
        solve(model, "global", starts=[other], progress=False)


def test_cli_rejects_bad_global_options(capsys):
    for flag, value in (("--max-starts", "0"), ("--patience", "0"), ("--workers", "0"),
                        ("--time-budget", "-1")):
        code = main(["solve", "dufm", "--K", "2", "--L", "2", "--n", "1", "--lam-h", "0.01",
                     "--lam-w", "0.01", flag, value])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and flag in err[0]


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc")
def test_killed_search_takes_its_workers_down(tmp_path):
    pids, survivors = workers_of_killed_command(
        ["solve", "dufm", "--K", "3", "--L", "4", "--n", "1", "--lam-h", "0.004", "--lam-w",
         "0.004", "--width", "12", "--workers", "2", "--max-starts", "1000", "--patience", "1000"],
        tmp_path)
    assert len(pids) >= 2, "the workers did not start"
    assert not survivors


@pytest.mark.parametrize("side", [0.98, 1.02])
def test_k2_dufm_on_both_sides_of_the_threshold(side):
    # λ = λ_crit·side on every block (docs/theory.md §4.3): below, L_DNC < ½ with q* ≈ (L−1)/L;
    # above, the zero solution (Φ = ½) is the global minimum.
    K, L, n = 2, 3, 3
    lam = optima.dnc_critical_lambda(K, L, n) * side
    model = dufm(K, L, n, lam, width=6)
    predicted = optima.predict(model)
    assert predicted.kind == "global_optimum" and predicted.is_zero == (side > 1)
    solution = solve(model, seed=0, progress=False)
    assert abs(solution.loss - predicted.optimal_loss) <= RELATIVE * predicted.optimal_loss


@pytest.mark.parametrize("index", range(6))
def test_default_reaches_random_ufm_predictions(index):
    # The UFM's default is L-BFGS (every local minimum is global); widths below K have the
    # rank-limited closed forms, and ρ ≥ 1 the zero solution.
    rng = np.random.default_rng(3000 + index)
    K = int(rng.integers(2, 6))
    n = int(rng.integers(1, 4))
    width = int(rng.integers(1, K + 3))
    bias = bool(index % 2)
    lam_w, lam_h = (float(10 ** rng.uniform(-3, -0.7)) for _ in range(2))
    model = UFM(K, n, width, lam_w, lam_h, bias=bias)
    predicted = optima.predict(model)
    assert predicted.kind == "global_optimum"
    solution = solve(model, seed=index, progress=False)
    assert solution.method == "lbfgs"
    assert abs(solution.loss - predicted.optimal_loss) <= RELATIVE * predicted.optimal_loss
