"""Tests of ufm.torch_hooks: collapse of a PyTorch model through forward hooks.

A small MLP of the test's own (fc1 → ReLU → fc2 → ReLU → fc3, K = 3 classes of 12 samples, batches
of 8, so the last batch is short) is measured with ``collapse_report`` and with a
``CollapseMonitor`` inside a plain SGD loop. The features are recomputed independently by a
float64 numpy forward of the layers, and the metrics by the literal formulas of docs/theory.md
§1.1 and §3 (Σ_W = (1/N)(Z − Z̄)(Z − Z̄)ᵀ, Σ_B = (1/K)M̄M̄ᵀ, Σ_B^† from the centred means, …).

Tolerance: the model runs in float64 and the hooks stream shifted float64 class statistics, so
both sides carry a few units of rounding u = 1.1e-16 amplified by the conditioning of the metric
(Σ_B^† and ratios of traces of O(1) features, condition ≲ 1e3 here): 1e-10 relative. NC4.ncc and
RANK are compared exactly.
"""

from __future__ import annotations

import copy
import json
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ufm.metrics import UndefinedMetricError, all_metrics
from ufm.torch_hooks import CollapseMonitor, CollapseReport, collapse_report

torch.set_num_threads(1)

RTOL = 1e-10  # see module docstring
K = 3
PER_CLASS = 12
N = K * PER_CLASS  # 36
BATCH = 8  # does not divide N
INPUT = 5


# ---------------------------------------------------------------------------------------------
# the model, the data, the independent forward and the literal formulas
# ---------------------------------------------------------------------------------------------
def make_model(seed: int = 0, dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(
        OrderedDict(
            fc1=nn.Linear(INPUT, 16),
            relu1=nn.ReLU(),
            fc2=nn.Linear(16, 8),
            relu2=nn.ReLU(),
            fc3=nn.Linear(8, K),
        )
    )
    return model.to(dtype)


def make_data(seed: int = 0, dtype=torch.float64):
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(K), PER_CLASS))
    centers = 2.0 * rng.standard_normal((K, INPUT))
    inputs = centers[labels] + rng.standard_normal((N, INPUT))
    return torch.tensor(inputs, dtype=dtype), torch.tensor(labels, dtype=torch.int64)


def make_loader(inputs, labels, shuffle=True, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(inputs, labels), batch_size=BATCH, shuffle=shuffle, generator=generator
    )


def numpy_parameters(model):
    return {name: value.detach().cpu().numpy().astype(np.float64) for name, value in
            model.state_dict().items()}


def numpy_features(parameters, inputs):
    """Outputs of every layer as columns (d, N), by a float64 numpy forward."""
    x = np.asarray(inputs, dtype=np.float64).T
    out = {}
    out["fc1"] = parameters["fc1.weight"] @ x + parameters["fc1.bias"][:, None]
    out["relu1"] = np.maximum(out["fc1"], 0.0)
    out["fc2"] = parameters["fc2.weight"] @ out["relu1"] + parameters["fc2.bias"][:, None]
    out["relu2"] = np.maximum(out["fc2"], 0.0)
    out["fc3"] = parameters["fc3.weight"] @ out["relu2"] + parameters["fc3.bias"][:, None]
    return out


def literal_metrics(Z, labels, num_classes, weight=None, bias=None):
    """docs/theory.md §1.1 and §3, written out in float64 numpy for features Z (d, N)."""
    d, n_samples = Z.shape
    k = num_classes
    Y = np.zeros((k, n_samples))
    Y[labels, np.arange(n_samples)] = 1.0
    counts = Y.sum(axis=1)
    M = Z @ Y.T / counts  # class means (d, K)
    Zbar = M @ Y  # within-class mean field
    residual = Z - Zbar
    Mc = M - M.mean(axis=1, keepdims=True)  # M P_K
    sigma_w = residual @ residual.T / n_samples
    sigma_b = Mc @ Mc.T / k
    sigma_b_unc = M @ M.T / k
    sigma_t = sigma_w + sigma_b
    U, s, _ = np.linalg.svd(Mc)
    r = k - 1  # rank of the centred means of generic features
    sigma_b_pinv = k * U[:, :r] @ np.diag(1.0 / s[:r] ** 2) @ U[:, :r].T
    out = {
        "NC1.tr_unc": np.trace(sigma_w) / np.trace(sigma_b_unc),
        "NC1.tr": np.trace(sigma_w) / np.trace(sigma_b),
        "NC1.pinv": np.trace(sigma_w @ sigma_b_pinv) / k,
        "NC1.wt": np.trace(sigma_w) / np.trace(sigma_t),
    }
    if np.all(counts == counts[0]):  # balanced: ‖Z − Z̄‖²/‖Z̄‖² (docs/theory.md §3)
        assert math.isclose(
            out["NC1.tr_unc"], np.sum(residual**2) / np.sum(Zbar**2), rel_tol=1e-12
        )
    variances = np.array(
        [np.sum(residual[:, labels == c] ** 2) / counts[c] for c in range(k)]
    )
    pairs = [
        (variances[a] + variances[b]) / (2 * np.sum((M[:, a] - M[:, b]) ** 2))
        for a in range(k)
        for b in range(a + 1, k)
    ]
    out["NC1.cdnv"] = 2.0 / (k * (k - 1)) * sum(pairs)
    s_means = np.linalg.svd(M, compute_uv=False)
    out["NC2.kappa"] = s_means[0] / s_means[k - 1]
    gram = M.T @ M
    out["NC2.orth"] = np.linalg.norm(gram / np.linalg.norm(gram) - np.eye(k) / np.sqrt(k))
    gram_c = Mc.T @ Mc
    projector = np.eye(k) - np.ones((k, k)) / k
    out["NC2.etf"] = np.linalg.norm(gram_c / np.linalg.norm(gram_c) - projector / np.sqrt(k - 1))
    out["RANK"] = int(np.linalg.matrix_rank(M))
    out["NEG"] = np.linalg.norm(np.minimum(Z, 0.0), 2) / np.linalg.norm(Z, 2)
    center = bias is not None
    if center:
        out["NC2.kappa_nz"] = s[0] / s[k - 2]
    else:
        out["NC2.kappa_nz"] = s_means[0] / s_means[k - 1]
    if weight is not None:
        b = np.zeros(k) if bias is None else bias
        A = Mc if center else M
        out["NC3.dual"] = np.linalg.norm(
            weight / np.linalg.norm(weight) - A.T / np.linalg.norm(A)
        )
        cosines = [
            weight[c] @ A[:, c] / (np.linalg.norm(weight[c]) * np.linalg.norm(A[:, c]))
            for c in range(k)
        ]
        out["NC3.cos"] = float(np.mean(cosines))
        out["NC3.cos_min"] = float(np.min(cosines))
        Q, _ = np.linalg.qr(M)  # span(M), rank K
        out["NC3.span"] = 1.0 - np.sum((weight @ Q @ Q.T) ** 2) / np.sum(weight**2)
        distances = np.stack([np.sum((Z - M[:, [c]]) ** 2, axis=0) for c in range(k)])
        scores = weight @ Z + b[:, None]
        out["NC4.ncc"] = float(np.mean(distances.argmin(axis=0) == scores.argmax(axis=0)))
        s_weight = np.linalg.svd(weight, compute_uv=False)
        out["KAPPA"] = s_weight[0] / s_weight[k - 1]
        error = np.sum((scores - Y) ** 2)
        out["ERR"] = math.sqrt(error)
        out["ERR.data"] = error / (2 * n_samples)
    return out


def assert_metrics_equal(got, expected, rtol=RTOL, where=""):
    for key, value in expected.items():
        assert key in got, f"{where}{key} missing"
        if isinstance(value, (int, np.integer)) or key == "NC4.ncc":
            assert got[key] == value, f"{where}{key}: {got[key]} != {value}"
        elif value is None:
            assert got[key] is None, f"{where}{key}: {got[key]} is not None"
        else:
            assert got[key] is not None, f"{where}{key} is None"
            assert abs(got[key] - value) <= rtol * abs(value) + 1e-300, (
                f"{where}{key}: {got[key]!r} != {value!r}"
            )


def no_hooks(model):
    return all(not module._forward_hooks for module in model.modules())


LAYERS = ["fc1", "relu2", "fc3"]


def classifier_for(model):
    """relu2 → the module fc3 (with bias: centred NC3); fc1 → a fixed (W,) (no bias)."""
    weight = np.random.default_rng(5).standard_normal((K, 16))
    return {"relu2": "fc3", "fc1": (weight,)}, weight


def expected_all(parameters, inputs, labels, fc1_weight, final_parameters=None):
    """The literal metrics of LAYERS for the model ``parameters`` (the classifier fc3 of
    ``final_parameters`` when given: the monitor reads it at report time)."""
    features = numpy_features(parameters, inputs)
    classifier = final_parameters or parameters
    y = np.asarray(labels)
    return {
        "fc1": literal_metrics(features["fc1"], y, K, fc1_weight),
        "relu2": literal_metrics(
            features["relu2"], y, K, classifier["fc3.weight"], classifier["fc3.bias"]
        ),
        "fc3": literal_metrics(features["fc3"], y, K),
    }


# ---------------------------------------------------------------------------------------------
# collapse_report
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("within", ["scatter", "projection"])
def test_collapse_report_equals_the_literal_formulas(within):
    model = make_model()
    inputs, labels = make_data()
    classifier, fc1_weight = classifier_for(model)
    model.train()
    model.fc2.eval()  # a mixed state, restored exactly
    report = collapse_report(
        model, make_loader(inputs, labels), LAYERS, num_classes=K, classifier=classifier,
        within=within,
    )
    expected = expected_all(numpy_parameters(model), inputs.numpy(), labels.numpy(), fc1_weight)
    for name in LAYERS:
        if within == "projection" and name in ("fc1", "fc3"):  # NEG needs the d×d moment
            assert report[name]["NEG"] is None
            expected[name] = {k: v for k, v in expected[name].items() if k != "NEG"}
        assert_metrics_equal(report[name], expected[name], where=f"{name}: ")
    assert report["relu2"]["NEG"] == 0.0
    assert within == "projection" or report["fc1"]["NEG"] > 0
    assert report["fc3"]["NC4.ncc"] is None and report["fc3"]["NC3.dual"] is None
    assert report.counts == (PER_CLASS,) * K and report.num_samples == N
    assert report.widths == {"fc1": 16, "relu2": 8, "fc3": K}
    # previous modes restored, hooks removed
    assert model.training and model.fc1.training and not model.fc2.training
    assert no_hooks(model)


def test_collapse_report_equals_all_metrics_of_float32_features():
    """Every key, float32 model: the hooked features are those of a plain forward of the layers
    (same batches, same kernels), measured by ufm.metrics.all_metrics."""
    model = make_model(seed=1, dtype=torch.float32)
    inputs, labels = make_data(seed=1, dtype=torch.float32)
    loader = make_loader(inputs, labels, shuffle=False)
    report = collapse_report(model, loader, LAYERS, K, classifier={"relu2": model.fc3})
    blocks = {name: [] for name in LAYERS}
    with torch.no_grad():
        for xb, _ in loader:
            h1 = model.fc1(xb)
            h2 = model.relu2(model.fc2(model.relu1(h1)))
            blocks["fc1"].append(h1)
            blocks["relu2"].append(h2)
            blocks["fc3"].append(model.fc3(h2))
    y = labels.numpy()
    weight = model.fc3.weight.detach().double().numpy()
    bias = model.fc3.bias.detach().double().numpy()
    for name in LAYERS:
        Z = torch.cat(blocks[name]).double().numpy().T
        extra = (weight, bias) if name == "relu2" else ()
        expected = all_metrics(Z, y, *extra, num_classes=K, negativity=True)
        assert list(report[name]) == list(expected)
        assert_metrics_equal(report[name], expected, where=f"{name}: ")


def test_traces_and_no_ncc():
    model = make_model()
    inputs, labels = make_data()
    classifier, fc1_weight = classifier_for(model)
    report = collapse_report(
        model, make_loader(inputs, labels), LAYERS, K, classifier=classifier,
        within="traces", ncc=False,
    )
    expected = expected_all(numpy_parameters(model), inputs.numpy(), labels.numpy(), fc1_weight)
    for name in LAYERS:
        assert report[name]["NC1.pinv"] is None
        for key in ("NC4.ncc", "ERR", "ERR.data"):
            assert report[name][key] is None
        keep = {
            key: value
            for key, value in expected[name].items()
            if key not in ("NC1.pinv", "NC4.ncc", "ERR", "ERR.data", "NEG")
        }
        assert_metrics_equal(report[name], keep, where=f"{name}: ")
    assert report["relu2"]["NEG"] == 0.0  # no negative entry: known without the d×d moment
    assert any("NC1.pinv" in note for note in report.notes)


def test_feature_maps_are_flattened_per_sample():
    torch.manual_seed(3)
    model = nn.Sequential(
        OrderedDict(conv=nn.Conv2d(2, 3, 3, padding=1), act=nn.ReLU(), pool=nn.AdaptiveAvgPool2d(2))
    ).double()
    inputs = torch.randn(20, 2, 4, 4, dtype=torch.float64)
    labels = torch.arange(20) % 4
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=6)
    report = collapse_report(model, loader, ["conv", "pool"], 4)
    with torch.no_grad():
        conv = model.conv(inputs)
        pool = model.pool(model.act(conv))
    for name, output in (("conv", conv), ("pool", pool)):
        expected = all_metrics(output.reshape(20, -1).T.numpy(), labels.numpy(), num_classes=4, negativity=True)
        assert report.widths[name] == output[0].numel()
        assert_metrics_equal(report[name], expected, where=f"{name}: ")


class ColumnLinear(nn.Module):
    """W x for features as columns x (p, B)."""

    def __init__(self, rows, columns):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(rows, columns, dtype=torch.float64))

    def forward(self, x):
        return self.weight @ x


class ColumnNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.first = ColumnLinear(6, INPUT)
        self.second = ColumnLinear(K, 6)

    def forward(self, x):  # x (B, p) from the loader; the network works on columns
        return self.second(torch.relu(self.first(x.T)))


def test_rows_false_reads_samples_along_the_last_dimension():
    model = ColumnNet()
    inputs, labels = make_data()
    weight = np.random.default_rng(8).standard_normal((K, 6))
    report = collapse_report(
        model, make_loader(inputs, labels), ["first"], K, classifier={"first": weight},
        rows=False,
    )
    Z = model.first.weight.detach().numpy() @ inputs.numpy().T
    assert_metrics_equal(report["first"], literal_metrics(Z, labels.numpy(), K, weight))


def test_in_place_activation_after_the_hooked_layer_does_not_change_its_features():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(INPUT, 7), nn.ReLU(inplace=True), nn.Linear(7, K)).double()
    inputs, labels = make_data()
    report = collapse_report(model, make_loader(inputs, labels), ["0"], K)
    with torch.no_grad():
        pre = model[0](inputs)
    assert (pre < 0).any()
    assert_metrics_equal(report["0"], all_metrics(pre.T.numpy(), labels.numpy(), num_classes=K, negativity=True))
    assert report["0"]["NEG"] > 0


def test_report_serializes():
    model = make_model()
    inputs, labels = make_data()
    report = collapse_report(model, make_loader(inputs, labels), ["relu2"], K,
                             classifier={"relu2": "fc3"})
    assert isinstance(report, CollapseReport)
    data = report.to_dict()
    assert list(data) == ["relu2"] and data["relu2"]["RANK"] == K
    assert json.loads(report.to_json()) == data
    assert all(isinstance(v, (int, float)) or v is None for v in data["relu2"].values())
    text = str(report)
    assert "relu2" in text and "NC1.tr_unc" in text and f"N = {N}" in text
    with pytest.raises(KeyError, match="relu2"):
        report["fc9"]


def test_tuple_and_list_inputs_are_passed_positionally():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = nn.Bilinear(INPUT, INPUT, 4).double()

        def forward(self, a, b):
            return self.mix(a, b)

    torch.manual_seed(7)
    model = TwoInputs()
    inputs, labels = make_data()
    loader = [((inputs[i : i + BATCH], inputs[i : i + BATCH] ** 2), labels[i : i + BATCH])
              for i in range(0, N, BATCH)]
    report = collapse_report(model, loader, ["mix"], K)
    with torch.no_grad():
        out = model(inputs, inputs**2)
    assert_metrics_equal(report["mix"], all_metrics(out.T.numpy(), labels.numpy(), num_classes=K, negativity=True))


# ---------------------------------------------------------------------------------------------
# CollapseMonitor in a training loop
# ---------------------------------------------------------------------------------------------
def test_monitor_in_a_training_loop_equals_the_literal_formulas():
    model = make_model(seed=2)
    inputs, labels = make_data(seed=2)
    loader = make_loader(inputs, labels, seed=2)
    classifier, fc1_weight = classifier_for(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=1e-3)
    model.train()
    epochs = 3
    with CollapseMonitor(model, LAYERS, num_classes=K, classifier=classifier) as monitor:
        for epoch in range(epochs):
            monitor.reset()
            seen = []  # (inputs, labels, parameters of the forward) of this epoch
            for xb, yb in loader:
                seen.append((xb.numpy().copy(), yb.numpy().copy(), numpy_parameters(model)))
                out = model(xb)
                loss = nn.functional.cross_entropy(out, yb)
                held = list(monitor._held.values())
                assert held and all(not t.requires_grad and t.grad_fn is None for t in held)
                monitor.update(yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        report = monitor.report()
        kept = monitor._states["relu2"].kept
        assert kept and all(not block.requires_grad for block, _ in kept)
    assert model.training
    assert no_hooks(model) and monitor.closed
    final = numpy_parameters(model)
    y = np.concatenate([batch_labels for _, batch_labels, _ in seen])
    features = {name: [] for name in LAYERS}
    for batch_inputs, _, parameters in seen:
        for name, Z in numpy_features(parameters, batch_inputs).items():
            if name in features:
                features[name].append(Z)
    Z = {name: np.concatenate(blocks, axis=1) for name, blocks in features.items()}
    expected = {
        "fc1": literal_metrics(Z["fc1"], y, K, fc1_weight),
        "relu2": literal_metrics(Z["relu2"], y, K, final["fc3.weight"], final["fc3.bias"]),
        "fc3": literal_metrics(Z["fc3"], y, K),
    }
    for name in LAYERS:
        assert_metrics_equal(report[name], expected[name], where=f"{name}: ")
    assert report.num_samples == N  # the last epoch only
    # the report of the monitor after close is still available; update is not
    assert monitor.report().to_dict() == report.to_dict()
    with pytest.raises(RuntimeError, match="closed"):
        monitor.update(labels[:BATCH])


def test_monitor_reset_and_report_without_samples():
    model = make_model()
    inputs, labels = make_data()
    monitor = CollapseMonitor(model, ["fc2"], K)
    model(inputs)
    monitor.update(labels)
    assert monitor.num_samples == N and list(monitor.counts) == [PER_CLASS] * K
    monitor.reset()
    assert monitor.num_samples == 0
    with pytest.raises(ValueError, match="no samples"):
        monitor.report()
    monitor.close()
    monitor.close()  # idempotent
    assert no_hooks(model)


def test_monitor_matches_collapse_report_in_eval_mode():
    model = make_model()
    inputs, labels = make_data()
    loader = make_loader(inputs, labels)
    reference = collapse_report(model, loader, LAYERS, K, classifier={"relu2": "fc3"})
    model.eval()
    with CollapseMonitor(model, LAYERS, K, classifier={"relu2": "fc3"}) as monitor, torch.no_grad():
        for xb, yb in loader:
            model(xb)
            monitor.update(yb.tolist())
        report = monitor.report()
    for name in LAYERS:
        assert_metrics_equal(report[name], reference[name], where=f"{name}: ")


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_unknown_layer_lists_the_available_names():
    model = make_model()
    with pytest.raises(ValueError, match=r"'fc4'.*did you mean.*'fc1'.*'relu1'") as info:
        CollapseMonitor(model, ["fc1", "fc4"], K)
    assert no_hooks(model)
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(60)])
    with pytest.raises(ValueError, match=r"\(41 more\)") as info:  # 61 names with the root ''
        collapse_report(big, [], ["layer"], K)
    assert "'0', '1'" in str(info.value) and "'59'" not in str(info.value)
    with pytest.raises(ValueError, match="no module named 'fc9'"):
        CollapseMonitor(model, ["fc1"], K, classifier={"fc1": "fc9"})


def test_label_count_must_match_the_batch():
    model = make_model()
    inputs, labels = make_data()
    with CollapseMonitor(model, ["fc1"], K) as monitor:
        model(inputs[:BATCH])
        with pytest.raises(ValueError, match=r"labels has 7 entries but layer 'fc1'.*batch of 8"):
            monitor.update(labels[: BATCH - 1])
    bad_loader = [(inputs[:BATCH], labels[: BATCH + 1])]
    with pytest.raises(ValueError, match=r"batch 0: labels has 9 entries"):
        collapse_report(model, bad_loader, ["fc1"], K)


def test_a_layer_returning_a_tuple_is_named():
    class Pair(nn.Module):
        def forward(self, x):
            return x, -x

    model = nn.Sequential(OrderedDict(lin=nn.Linear(INPUT, 4), pair=Pair())).double()
    inputs, labels = make_data()
    with pytest.raises(TypeError, match=r"layer 'pair' returned a builtins\.tuple, not a tensor"):
        collapse_report(model, make_loader(inputs, labels), ["pair"], K)
    assert no_hooks(model)
    lstm = nn.LSTM(INPUT, 3, batch_first=True).double()
    with CollapseMonitor(lstm, [""], K) as monitor:
        lstm(inputs[:, None, :])
        with pytest.raises(TypeError, match="layer '' returned a builtins.tuple"):
            monitor.update(labels)


def test_update_without_a_forward():
    model = make_model()
    inputs, labels = make_data()
    with CollapseMonitor(model, ["fc1", "fc3"], K) as monitor:
        with pytest.raises(RuntimeError, match="without a preceding forward"):
            monitor.update(labels)
        model(inputs)
        monitor.update(labels)
        with pytest.raises(RuntimeError, match="without a preceding forward"):
            monitor.update(labels)  # the outputs were consumed
        model.fc1(inputs)  # only one hooked layer ran
        with pytest.raises(RuntimeError, match=r"\['fc3'\] did not run"):
            monitor.update(labels)


def test_labels_outside_the_classes():
    model = make_model()
    inputs, labels = make_data()
    with CollapseMonitor(model, ["fc1"], K) as monitor:
        model(inputs)
        with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
            monitor.update(labels + 1)
        model(inputs)
        with pytest.raises(TypeError, match="labels must be an integer array"):
            monitor.update(labels.double())
        assert monitor.num_samples == 0
    loader = [(inputs[:BATCH], labels[:BATCH]), (inputs[BATCH:], -labels[BATCH:] - 1)]
    model.train()
    with pytest.raises(ValueError, match=r"batch 1: labels must lie in 0\.\.2"):
        collapse_report(model, loader, ["fc1"], K)
    assert model.training and no_hooks(model)  # restored on error


def test_nan_features_name_the_layer_and_leave_the_monitor_unchanged():
    model = make_model()
    inputs, labels = make_data()
    bad = inputs.clone()
    bad[3, 0] = float("nan")
    with CollapseMonitor(model, ["fc1", "relu2"], K) as monitor:
        model(inputs[:20])
        monitor.update(labels[:20])
        model(bad[20:] * 0 + bad[3])  # every sample NaN in fc1
        with pytest.raises(ValueError, match=r"layer 'fc1': the output holds \d+ NaN or Inf"):
            monitor.update(labels[20:])
        assert monitor.num_samples == 20
        model(inputs[20:])
        monitor.update(labels[20:])
        report = monitor.report()
    reference = collapse_report(model, make_loader(inputs, labels), ["fc1", "relu2"], K)
    for name in ("fc1", "relu2"):
        assert_metrics_equal(report[name], reference[name])
    with pytest.raises(ValueError, match="batch 0: layer 'fc1': the output holds"):
        collapse_report(model, [(bad, labels)], ["fc1"], K)
    inf_model = nn.Sequential(OrderedDict(scale=nn.Linear(INPUT, 2))).double()
    with torch.no_grad():
        inf_model.scale.weight.fill_(float("inf"))
    with pytest.raises(ValueError, match="layer 'scale'"):
        collapse_report(inf_model, [(inputs, labels)], ["scale"], K)


@pytest.mark.parametrize("bad, error", [(1, ValueError), (0, ValueError), (2.0, TypeError)])
def test_num_classes_must_be_an_integer_of_at_least_two(bad, error):
    model = make_model()
    with pytest.raises(error, match="num_classes"):
        CollapseMonitor(model, ["fc1"], bad)
    with pytest.raises(error, match="num_classes"):
        collapse_report(model, [], ["fc1"], bad)
    assert no_hooks(model)


def test_other_bad_arguments():
    model = make_model()
    inputs, labels = make_data()
    loader = make_loader(inputs, labels)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        collapse_report(lambda x: x, loader, ["fc1"], K)
    with pytest.raises(ValueError, match="not one of layers"):
        CollapseMonitor(model, ["fc1"], K, classifier={"fc2": "fc3"})
    with pytest.raises(ValueError, match=r"K = 3 rows"):
        CollapseMonitor(model, ["relu2"], K, classifier={"relu2": "fc2"})
    with pytest.raises(ValueError, match=r"weight has shape \(3, 8\) but layer 'fc1' has d = 16"):
        collapse_report(model, loader, ["fc1"], K, classifier={"fc1": "fc3"})
    with pytest.raises(ValueError, match="within must be one of"):
        CollapseMonitor(model, ["fc1"], K, within="projection")
    with pytest.raises(ValueError, match="more than once"):
        CollapseMonitor(model, ["fc1", "fc1"], K)
    with pytest.raises(TypeError, match="an \\(inputs, labels\\) pair"):
        collapse_report(model, [{"x": inputs, "y": labels}], ["fc1"], K)
    with pytest.raises(ValueError, match="no batches"):
        collapse_report(model, [], ["fc1"], K)
    with pytest.raises(ValueError, match="class 2 received none"):
        collapse_report(model, [(inputs[labels < 2], labels[labels < 2])], ["fc1"], K)
    with pytest.raises(TypeError, match="re-iterable"):
        collapse_report(model, iter(loader), ["fc1"], K, within="projection")
    with pytest.raises(ValueError, match="rank_rtol"):
        CollapseMonitor(model, ["fc1"], K, rank_rtol=2.0)
    assert no_hooks(model)


def test_a_layer_run_twice_in_one_forward_is_ambiguous_for_collapse_report():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(INPUT, INPUT).double()

        def forward(self, x):
            return self.lin(self.lin(x))

    inputs, labels = make_data()
    with pytest.raises(ValueError, match=r"ran more than once.*'lin': 2"):
        collapse_report(Twice(), [(inputs, labels)], ["lin"], K)


def test_undefined_metrics_are_none_with_a_note_or_raise():
    model = nn.Sequential(OrderedDict(zero=nn.Linear(INPUT, 4, bias=False))).double()
    nn.init.zeros_(model.zero.weight)
    inputs, labels = make_data()
    report = collapse_report(model, [(inputs, labels)], ["zero"], K)
    assert report["zero"]["NC1.tr"] is None and report["zero"]["NEG"] is None
    assert any("layer 'zero'" in note and "NC1.tr" in note for note in report.notes)
    with pytest.raises(UndefinedMetricError, match="layer 'zero'"):
        collapse_report(model, [(inputs, labels)], ["zero"], K, undefined="raise")


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("within", ["scatter", "projection"])
def test_cuda_model_accumulates_on_the_device_and_matches_the_cpu(within):
    model = make_model()
    inputs, labels = make_data()
    loader = make_loader(inputs, labels)
    classifier, fc1_weight = classifier_for(model)
    cpu = collapse_report(model, loader, LAYERS, K, classifier=classifier, within=within)
    cuda_model = copy.deepcopy(model).cuda()
    gpu = collapse_report(cuda_model, loader, LAYERS, K, classifier=classifier, within=within)
    for name in LAYERS:
        assert_metrics_equal(gpu[name], {k: v for k, v in cpu[name].items()},
                             where=f"{name}: ")
    with CollapseMonitor(cuda_model, LAYERS, K, classifier=classifier) as monitor:
        for xb, yb in loader:
            cuda_model(xb.cuda())
            monitor.update(yb.cuda())
        assert monitor._states["fc1"].accumulator.device.type == "cuda"
        assert monitor._states["relu2"].kept[0][0].device.type == "cuda"
        report = monitor.report()
    for name in LAYERS:
        assert_metrics_equal(report[name], cpu[name], where=f"{name}: ")


def test_an_update_that_fails_part_way_asks_for_a_reset():
    """Finite values whose squares overflow float64 pass the finiteness check and fail inside
    the accumulation of the second layer, after the first layer took the batch."""
    model = make_model()
    inputs, labels = make_data()
    with CollapseMonitor(model, ["relu1", "fc3"], K) as monitor:
        model(inputs)
        monitor._held["fc3"] = torch.full((N, K), 1e200, dtype=torch.float64)
        with pytest.raises(ValueError, match="layer 'fc3'.*too large to square"):
            monitor.update(labels)
        model(inputs)
        with pytest.raises(RuntimeError, match="failed part-way.*call reset"):
            monitor.update(labels)
        with pytest.raises(RuntimeError, match="failed part-way"):
            monitor.report()
        monitor.reset()
        model(inputs)
        monitor.update(labels)
        assert monitor.report().num_samples == N
