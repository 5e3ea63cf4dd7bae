"""Methods ``"torch_gd"`` and ``"torch_lbfgs"``: through the model's torch objective and autograd.

Fixed-step gradient descent and ``torch.optim.LBFGS`` (strong-Wolfe line search) on any torch
device, float64 or float32; torch is imported only when one of them runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .common import _is_constrained


def _torch_dtype(dtype: Any):
    import torch

    if dtype in (None, "float64", torch.float64, np.float64):
        return torch.float64
    if dtype in ("float32", torch.float32, np.float32):
        return torch.float32
    raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")


def _torch_value_parts_gradient(model, leaves):
    import torch

    with torch.enable_grad():
        total, fit, penalties = model.torch_objective(leaves, return_parts=True)
        grads = torch.autograd.grad(total, list(leaves.blocks()))
    penalty = sum(penalties) if penalties else total.new_zeros(())
    return total.detach(), fit.detach(), penalty.detach(), grads


def _torch_stationarity(model, leaves, grads) -> float:
    import torch

    squared = (
        leaves.features.new_zeros(()) if leaves.features is not None else grads[0].new_zeros(())
    )
    for name, block, grad in zip(leaves.block_names(), leaves.blocks(), grads):
        if name == "H1" and _is_constrained(model):
            squared = squared + (torch.minimum(block.detach(), grad) ** 2).sum()
        else:
            squared = squared + (grad**2).sum()
    return float(squared.sqrt())


def _run_torch_gd(
    model,
    initial,
    *,
    lr,
    tolerance,
    max_iterations,
    device,
    dtype,
    check_every,
    state,
    progress,
    callback=None,
):
    import torch

    leaves = model.project(initial).to_torch(device=device, dtype=dtype, requires_grad=True)
    blocks = list(leaves.blocks())
    features_index = 0 if "H1" in leaves.block_names() else None
    constrained = _is_constrained(model)
    previous = [block.detach().clone() for block in blocks]
    iteration, last_checked = 0, 0
    reason, message = "max_iterations", ""
    while True:
        total, fit, penalty, grads = _torch_value_parts_gradient(model, leaves)
        state.evaluations += 1
        check = (
            iteration % check_every == 0
            or iteration >= max_iterations
            or iteration in state.record_at
        )
        if check:
            value = float(total)
            norm = _torch_stationarity(model, leaves, grads)
            finite = math.isfinite(value) and math.isfinite(norm)
            if iteration in state.record_at or not finite:
                state.history.append(
                    iteration, value, float(fit), float(penalty), norm, state.elapsed()
                )
            if not finite:
                reason = "diverged"
                if iteration == 0:
                    message = f"non-finite objective at the initial point (Φ = {value})"
                    break
                # Step back to the last iterate known to be finite (at most check_every steps back).
                with torch.no_grad():
                    for block, saved in zip(blocks, previous):
                        block.copy_(saved)
                iteration = last_checked
                message = f"non-finite objective detected; returning iteration {iteration}"
                break
            if callback is not None and iteration > 0:
                callback(iteration, value)
            if norm <= tolerance:
                reason, message = (
                    "gradient_tolerance",
                    f"stationarity {norm:.3e} <= {tolerance:.3e}",
                )
                break
            if iteration >= max_iterations:
                reason, message = "max_iterations", f"{max_iterations} iterations"
                break
            last_checked = iteration
            for saved, block in zip(previous, blocks):
                saved.copy_(block.detach())
            progress.update(iteration, value)
        with torch.no_grad():
            for block, grad in zip(blocks, grads):
                block.sub_(lr * grad)
            if constrained and features_index is not None:
                blocks[features_index].clamp_(min=0.0)
        iteration += 1
    return leaves.to_numpy(), iteration, reason, message


def _run_torch_lbfgs(
    model,
    initial,
    *,
    tolerance,
    max_iterations,
    lbfgs_memory,
    device,
    dtype,
    inner_iterations,
    state,
    progress,
    callback=None,
):
    import torch

    if _is_constrained(model):
        raise ValueError(
            "method 'torch_lbfgs' does not handle nonneg_H1; use 'lbfgs' (L-BFGS-B with bounds), "
            "'gd' or 'torch_gd'"
        )
    leaves = initial.to_torch(device=device, dtype=dtype, requires_grad=True)
    blocks = list(leaves.blocks())
    optimizer = torch.optim.LBFGS(
        blocks,
        lr=1.0,
        max_iter=inner_iterations,
        max_eval=inner_iterations * 5 // 4 + 10,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        history_size=lbfgs_memory,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad(set_to_none=False)
        with torch.enable_grad():
            total = model.torch_objective(leaves)
            total.backward()
        state.evaluations += 1
        return total

    saved = [block.detach().clone() for block in blocks]
    iteration, last_recorded = 0, -1
    reason, message = "max_iterations", ""
    while True:
        total, fit, penalty, grads = _torch_value_parts_gradient(model, leaves)
        value = float(total)
        norm = _torch_stationarity(model, leaves, grads)
        finite = math.isfinite(value) and math.isfinite(norm)
        # Outer steps advance by up to ``inner_iterations``: record when a log-spaced point was passed.
        if (
            not finite
            or any(last_recorded < point <= iteration for point in state.record_at)
            or iteration == 0
        ):
            state.history.append(
                iteration, value, float(fit), float(penalty), norm, state.elapsed()
            )
            last_recorded = iteration
        if not finite:
            with torch.no_grad():
                for block, old in zip(blocks, saved):
                    block.copy_(old)
            reason, message = "diverged", "non-finite objective; returning the last finite iterate"
            break
        if callback is not None and iteration > 0:
            callback(iteration, value)
        if norm <= tolerance:
            reason, message = "gradient_tolerance", f"stationarity {norm:.3e} <= {tolerance:.3e}"
            break
        if iteration >= max_iterations:
            reason, message = "max_iterations", f"{max_iterations} iterations"
            break
        changed = (
            any(not torch.equal(block.detach(), old) for block, old in zip(blocks, saved))
            or iteration == 0
        )
        if not changed:
            reason, message = "no_progress", "L-BFGS made no change to the iterate"
            break
        for old, block in zip(saved, blocks):
            old.copy_(block.detach())
        optimizer.param_groups[0]["max_iter"] = min(inner_iterations, max_iterations - iteration)
        before = optimizer.state[blocks[0]].get("n_iter", 0)
        optimizer.step(closure)
        after = optimizer.state[blocks[0]].get("n_iter", 0)
        iteration += max(after - before, 1)
        progress.update(iteration, value)
    return leaves.to_numpy(), iteration, reason, message
