"""E-C4 (Súkeník, Lampert & Mondelli 2024, Fig. 3 left): low-rank SRG points against DNC.

For K = r(r−1)/2 classes (the edges of the complete graph K_r) and depth L, docs/theory.md §4.5
builds a point of the L-DUFM from the triangular strongly regular graph whose objective is the
DNC scalar problem with the coefficient K replaced by c_r (basic point) or c(t*) (improved
family). Left: c_r/K (:func:`ufm.optima.srg_ratio`) and c(t*)/K
(:func:`ufm.optima.predict_srg` with ``shift=None``) against r, independent of n and λ; below
the line 1 the SRG point beats DNC for every n, λ with L_DNC < ½. Right: the loss ratio
L_SRG/L_DNC of the improved family at two values of λ (n = 1), the quantity the paper plots
(its λ is unknown); where the DNC optimum is the zero solution (L_DNC = ½) the ratio moves
towards 1.

Claim reproduced: at L ≥ 4 every ratio is below 1 and falls with r and L. At L = 3 the basic
point's ratio c_r/K stays above 1 for every r, while the improved family crosses 1 at r = 10
(K = 45): c(t*)/K = 0.99907 and L_SRG/L_DNC = 0.99913 at n = 1, λ = 0.004 (0.99820 at r = 11,
K = 55); below r = 10 DNC wins at L = 3, barely.
"""

from __future__ import annotations

from pathlib import Path

from ufm.optima import predict_srg, srg_ratio

from .common import figure_title, new_figure, save_figure, write_csv, write_json

NAME = "sukenik2024_ratio"
DEPTHS = (3, 4, 5)
PER_CLASS = 1
LAMBDAS = (0.001, 0.004)


def settings(quick: bool) -> dict:
    """Vertex counts r, depths L and the (n, λ) of the loss ratio."""
    last = 10 if quick else 16
    return {
        "vertices": list(range(4, last + 1)),
        "depths": list(DEPTHS),
        "per_class": PER_CLASS,
        "lams": list(LAMBDAS),
    }


def compute(quick: bool) -> list[dict]:
    """One row per (λ, L, r): coefficient and loss ratios of the basic and improved SRG points."""
    config = settings(quick)
    n = config["per_class"]
    rows = []
    for lam in config["lams"]:
        for depth in config["depths"]:
            for r in config["vertices"]:
                basic = predict_srg(r, depth, n, lam, lam, shift=-1.0)
                improved = predict_srg(r, depth, n, lam, lam, shift=None)
                rows.append(
                    {
                        "lam": lam,
                        "per_class": n,
                        "num_layers": depth,
                        "num_vertices": r,
                        "num_classes": basic.num_classes,
                        "coefficient_ratio_basic": srg_ratio(r, depth),
                        "coefficient_ratio_improved": improved.coefficient_ratio,
                        "shift_improved": improved.shift,
                        "dnc_loss": basic.dnc_loss,
                        "srg_loss_basic": basic.optimal_loss,
                        "srg_loss_improved": improved.optimal_loss,
                        "loss_ratio_basic": basic.loss_ratio,
                        "loss_ratio_improved": improved.loss_ratio,
                    }
                )
    return rows


def make(out_dir: str | Path, quick: bool = False) -> list[Path]:
    """Write ``sukenik2024_ratio.png``, ``.csv`` and ``.json`` into ``out_dir``."""
    rows = compute(quick)
    config = settings(quick)
    n = config["per_class"]
    figure, axes = new_figure(1, 2, 10.0, 4.8)
    colors = {3: "tab:red", 4: "tab:blue", 5: "tab:green"}
    first_lam = config["lams"][0]
    for depth in config["depths"]:
        color = colors.get(depth, "black")
        subset = [row for row in rows if row["num_layers"] == depth and row["lam"] == first_lam]
        r = [row["num_vertices"] for row in subset]
        axes[0].plot(r, [row["coefficient_ratio_basic"] for row in subset], "o-", color=color,
                     label=f"L = {depth}, basic point $c_r/K$ (t = −1)")
        axes[0].plot(r, [row["coefficient_ratio_improved"] for row in subset], "s--", color=color,
                     markerfacecolor="none", label=f"L = {depth}, improved family $c(t^*)/K$")
        for lam, style, marker in zip(config["lams"], ("-", "-."), ("s", "^")):
            subset = [row for row in rows if row["num_layers"] == depth and row["lam"] == lam]
            axes[1].plot([row["num_vertices"] for row in subset],
                         [row["loss_ratio_improved"] for row in subset], linestyle=style,
                         marker=marker, markerfacecolor="none", color=color,
                         label=f"L = {depth}, λ = {lam:g}")
    for axis in axes:
        axis.axhline(1.0, color="black", linestyle=":", linewidth=1.2, label="DNC (ratio 1)")
        axis.set_xlabel("r, vertices of $K_r$ (below: classes K = r(r−1)/2)")
        ticks = config["vertices"][:: 2 if len(config["vertices"]) > 9 else 1]
        axis.set_xticks(ticks)
        axis.set_xticklabels([f"{r}\n({r * (r - 1) // 2})" for r in ticks])
    axes[0].set_ylabel(r"coefficient ratio $c/K$")
    axes[0].set_title(r"$c/K$ (independent of $n$ and $\lambda$; docs/theory.md §4.5 table)")
    axes[1].set_ylabel(r"loss ratio $L_{\mathrm{SRG}}/L_{\mathrm{DNC}}$ (improved family)")
    axes[1].set_title(rf"$L_{{\mathrm{{SRG}}}}/L_{{\mathrm{{DNC}}}}$ at $n = {n}$, same $\lambda$ on all blocks")
    for axis in axes:  # room for the legend below the curves
        low, high = axis.get_ylim()
        axis.set_ylim(low - 0.5 * (high - low), high)
        axis.legend(loc="lower left", fontsize=7, ncol=2)
    figure.suptitle(
        figure_title(
            "C", "E-C4 (Fig. 3 left)", "low-rank SRG points against deep neural collapse", quick,
            "ratio < 1: the strongly-regular-graph point of docs/theory.md §4.5 beats every DNC point "
            "(ufm.optima.srg_ratio, ufm.optima.predict_srg)",
        )
    )
    paths = [save_figure(figure, out_dir, NAME), write_csv(out_dir, NAME, rows)]
    paths.append(write_json(out_dir, NAME, {"figure": NAME, "experiment": "E-C4", "quick": quick,
                                              "settings": config, "rows": rows}))
    return paths
