"""Tests of the E-B2 (width) and E-B4 (real backbone) figures of Súkeník et al. 2023.

Both figures run in their ``quick`` version (about 25 s and 35 s on one CPU thread): the files
are written, the data are those of the library functions the figures name, and the data show
the claims with the tolerances stated below.
"""

from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)



# ------------------------------------------------------------------------------------------
# E-B2: width
# ------------------------------------------------------------------------------------------


def test_width_tolerance_of_the_settings():
    """The figure's settings give a positive τ set by a split or a dropped sample; the stall values
    themselves (and their constructions) are tested in tests/test_optima.py."""
    from figures import sukenik2023_width as figure
    from ufm.optima import dnc_reach_tolerance, predict_dufm

    for quick in (True, False):
        config = figure.settings(quick)
        k, depth, n, lam = config["num_classes"], config["num_layers"], config["per_class"], config["lam"]
        reference = predict_dufm(k, depth, n, lam, lam).optimal_loss
        tolerance, nearest = dnc_reach_tolerance(k, depth, n, lam, lam)
        assert nearest.kind in ("split", "drop") and tolerance == 0.5 * (nearest.loss - reference) > 0


def test_width_figure_quick(tmp_path, figure_files):
    from figures import sukenik2023_width as figure
    from ufm.optima import dnc_reach_tolerance, dufm_stall_configurations, predict_dufm

    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME,
                              ordered=True, quick=True)
    config = data["settings"]
    assert data["experiment"] == "E-B2" and config == figure.settings(True)
    k, depth, n, lam = config["num_classes"], config["num_layers"], config["per_class"], config["lam"]
    reference = predict_dufm(k, depth, n, lam, lam).optimal_loss
    assert data["dnc_loss"] == reference
    # τ and the reference values are those of ufm.optima
    tolerance, nearest = dnc_reach_tolerance(k, depth, n, lam, lam)
    assert data["tolerance"] == tolerance and data["tolerance_from"] == nearest.to_dict()
    assert data["relative_tolerance"] == tolerance / reference
    assert data["stall_values"] == [entry.to_dict() for entry in dufm_stall_configurations(k, depth, n, lam, lam)]
    assert len(rows) == len(config["widths"]) * len(config["seeds"])
    losses = [float(row["loss"]) for row in rows]
    # K = 2: L_DNC is the global minimum, no end point lies below it (rounding aside)
    assert min(losses) >= reference * (1 - 1e-9)
    for row in rows:
        assert (row["reached"] == "True") == (float(row["loss"]) - reference <= data["tolerance"])
    reached = [row for row in rows if row["reached"] == "True"]
    stalled = [row for row in rows if row["reached"] == "False"]
    # the runs that reach L_DNC are collapsed (DNC1 of every layer ≈ 0) ...
    assert reached and max(float(row["dnc1"]) for row in reached) < 1e-8
    # ... the stalled ones sit at the derived values of non-collapsed configurations: at least one at
    # a split class and one with a dropped sample, to 1e-6 of L_DNC (GD stops at ‖∇Φ‖ ≈ 1e-5 there)
    for kind in ("split", "drop"):
        targets = [value["loss"] for value in data["stall_values"] if value["kind"] == kind]
        assert any(abs(float(row["loss"]) - target) <= 1e-6 * reference for row in stalled for target in targets)
    # the claim: narrow widths stall, wide ones reach L_DNC
    summary = {entry["width"]: entry for entry in data["summary"]}
    assert summary[max(config["widths"])]["fraction"] == 1.0
    assert summary[min(config["widths"])]["fraction"] < 1.0
    narrow = [entry["fraction"] for width, entry in summary.items() if width <= 2 * k]
    wide = [entry["fraction"] for width, entry in summary.items() if width >= 32]
    assert max(narrow) < min(wide)


# ------------------------------------------------------------------------------------------
# E-B4: real backbone
# ------------------------------------------------------------------------------------------


def test_head_label_uses_head_numbering():
    from figures.sukenik2023_real_backbone import head_label

    assert head_label("Φ_view = L_DNC", 1) == "Φ / L_DNC"
    assert head_label("mean s_1..s_K(W_3)", 1) == "mean s_1..s_K(W2)"
    assert head_label("mean ‖μ_c‖ of Z_3", 2) == "mean ‖μ_c‖ of H2"
    assert head_label("BAL.scalar λ_4‖W_4‖²", 1) == "BAL.scalar λ3‖W3‖²"


def test_real_backbone_figure_quick(tmp_path, figure_files):
    from figures import sukenik2023_real_backbone as figure
    from ufm.optima import predict_dufm

    rows, data = figure_files(figure.make(tmp_path, quick=True), tmp_path, figure.NAME,
                              ordered=True, quick=True)
    config = data["settings"]
    assert data["experiment"] == "E-B4" and config == figure.settings(True)
    n, lam, lam_h = config["per_class"], config["lam"], config["lam_h"]
    optimum = predict_dufm(2, figure.HEAD_DEPTH, n, lam_h, lam)
    assert data["dnc_loss"] == optimum.optimal_loss
    assert data["view"]["kind"] == "dufm" and data["view"]["nonneg_H1"] and data["view"]["is_global_optimum"]
    last = config["epochs"]

    def metric(seed, epoch, layer, kind, name):
        found = [float(row["value"]) for row in rows if row["series"] == "metric" and row["seed"] == str(seed)
                 and row["epoch"] == str(epoch) and row["layer"] == str(layer) and row["kind"] == kind
                 and row["metric"] == name]
        assert len(found) == 1
        return found[0]

    for seed in config["seeds"]:
        objective = [row for row in rows if row["series"] == "objective" and row["seed"] == str(seed)]
        values = [float(row["value"]) for row in objective]
        # λ_B = 0: Φ is the 3-DUFM objective on H₁ ≥ 0, bounded below by L_DNC (K = 2), and it ends
        # within 5% of it (measured ≈ 1.5%)
        assert min(values) >= optimum.optimal_loss * (1 - 1e-12)
        assert values[-1] / optimum.optimal_loss - 1 < 0.05
        for layer in (2, 3):
            # DNC1 of the last head layers falls by more than 10⁴ and ends below 1e-4 (measured ≈ 5e-6)
            start, end = metric(seed, 0, layer, "post", "NC1.tr_unc"), metric(seed, last, layer, "post", "NC1.tr_unc")
            assert end < 1e-4 and end < 1e-4 * start
            # DNC2: the class means approach an orthogonal frame (0.7 → below 0.15; measured ≈ 0.06)
            start, end = metric(seed, 0, layer, "post", "NC2.orth"), metric(seed, last, layer, "post", "NC2.orth")
            assert end < 0.15 and end < start / 4
            assert metric(seed, last, layer, "post", "RANK") == 2
        # DNC3: rows of W₂ in span(M₂) (≈ 1 → below 1e-2), W₃ ∝ M₃ᵀ (≈ 1.4 → below 0.15)
        assert metric(seed, last, 2, "post", "NC3.span") < 1e-2
        start, end = metric(seed, 0, 3, "post", "NC3.dual"), metric(seed, last, 3, "post", "NC3.dual")
        assert end < 0.15 and end < start / 5
        # the K nonzero singular values of W₂, W₃ are within 5% of s_l, the next one is below 1%
        for layer in (2, 3):
            points = {int(row["index"]): row for row in rows if row["series"] == "singular_value"
                      and row["seed"] == str(seed) and row["layer"] == str(layer)}
            for index in (1, 2):
                assert float(points[index]["predicted"]) == optimum.singular_values[layer - 1][index - 1]
                assert abs(float(points[index]["value"]) / float(points[index]["predicted"]) - 1) < 0.05
            if 3 in points:
                assert float(points[3]["value"]) < 0.01 * float(points[1]["value"])
        compared = {row["quantity"]: row for row in rows if row["series"] == "comparison" and row["seed"] == str(seed)}
        assert float(compared["Φ_view = L_DNC"]["predicted"]) == optimum.optimal_loss
        assert abs(float(compared["q (output ≈ qY)"]["relative_error"])) < 0.01
