"""Compiled kernels of the two metric passes of :mod:`ufm.metrics_accumulator` (numba).

Each kernel reads the input samples once, in their own dtype (float32 or float64), and does
in that one sweep what numpy needs several sweeps and temporaries for:

- :func:`class_sums_rows`, :func:`class_sums_columns` (pass 1): the per-class float64 sums
  Σ_{i∈c} z_i, accumulated row by row into a (K, d) (or (d, K)) table that stays in cache;
- :func:`residual_products_rows` (pass 2): per sample the residual r_i = z_i − μ_{y_i} in
  float64 (formed before any product, as the numpy route does), its squared norm ‖r_i‖², and
  the products P r_i with the q rows of P = [U | Wᵀ]ᵀ, four samples and three rows of P at a
  time, so that seven loaded values serve twelve multiply-adds;
- :func:`residuals_columns` (pass 2, samples as columns): the float64 residual block and its
  squared norms, for one BLAS product afterwards;
- :func:`nc4_decisions` (pass 2): per sample, from the (n, K) products with the class means
  (one BLAS product), the nearest class centre and the classifier's choice with the gaps to
  their runners-up, the agreement, the squared score residual, and the samples inside the
  rounding band, which the caller re-checks with the direct formulas.

Rounding: every sum here is an ordinary floating-point sum of the same terms as the numpy route,
only in another order (the kernels are compiled with re-association allowed, never with
assumptions about NaN or Inf, which must propagate to be reported). The error bounds of
:mod:`ufm.metrics_accumulator` (γ_{d+4}-type, independent of the order) hold unchanged.

The kernels are compiled on first use and cached on disk (``cache=True``): the first call on a
machine takes about a second per kernel and input dtype, later processes load them in
milliseconds. ``UFM_FUSED_KERNELS=0`` in the environment turns them off (the numpy route runs);
without numba the numpy route runs as well.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "class_sums_columns",
    "class_sums_rows",
    "nc4_decisions",
    "residual_products_rows",
    "residuals_columns",
]

#: Re-association and contraction (FMA) only: NaN and Inf keep their IEEE meaning.
_FASTMATH = {"reassoc", "contract", "nsz"}


@njit(cache=True, nogil=True)
def class_sums_rows(block, labels, sums):  # pragma: no cover - compiled
    """sums[y_i] += z_i for the rows z_i of ``block`` (n, d); ``sums`` (K, d) float64."""
    size, dimension = block.shape
    # two rows per step (about 20% faster than one): one update of the class row when both
    # samples share a class, two otherwise
    pairs = size // 2
    for pair in range(pairs):
        i = 2 * pair
        c0 = labels[i]
        c1 = labels[i + 1]
        if c0 == c1:
            for j in range(dimension):
                sums[c0, j] += np.float64(block[i, j]) + np.float64(block[i + 1, j])
        else:
            for j in range(dimension):
                sums[c0, j] += block[i, j]
                sums[c1, j] += block[i + 1, j]
    for i in range(2 * pairs, size):
        c = labels[i]
        for j in range(dimension):
            sums[c, j] += block[i, j]


@njit(cache=True, nogil=True)
def class_sums_columns(block, first, last, labels, sums_t):  # pragma: no cover - compiled
    """sums_t[:, y_i] += z_i for the columns i = first..last−1 of ``block`` (d, N), labels
    ``labels[i − first]``; ``sums_t`` (d, K)."""
    dimension = block.shape[0]
    classes = sums_t.shape[1]
    # eight feature rows at a time: eight independent running sums per sample, so that two
    # samples of the same class in a row do not wait on each other
    lines = np.empty((classes, 8))
    for j0 in range(0, dimension, 8):
        rows = min(8, dimension - j0)
        lines[:, :] = 0.0
        if rows == 8:
            for i in range(first, last):
                c = labels[i - first]
                for a in range(8):
                    lines[c, a] += block[j0 + a, i]
        else:
            for i in range(first, last):
                c = labels[i - first]
                for a in range(rows):
                    lines[c, a] += block[j0 + a, i]
        for a in range(rows):
            for c in range(classes):
                sums_t[j0 + a, c] += lines[c, a]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def residual_products_rows(block, labels, means, product, columns, squares
                           ):  # pragma: no cover - compiled
    """Residuals of the rows of ``block`` (n, d): squares[i] = ‖z_i − μ_{y_i}‖² and
    columns[:, i] = P (z_i − μ_{y_i}) with P = ``product`` (q, d); ``means`` (K, d)."""
    size, dimension = block.shape
    width = product.shape[0]
    residuals = np.zeros((4, dimension))
    for first in range(0, size, 4):
        count = min(4, size - first)
        for a in range(count):
            c = labels[first + a]
            total = 0.0
            for j in range(dimension):
                value = np.float64(block[first + a, j]) - means[c, j]
                residuals[a, j] = value
                total += value * value
            squares[first + a] = total
        for a in range(count, 4):
            for j in range(dimension):
                residuals[a, j] = 0.0
        # three rows of P at a time (the last block repeats the last row when q is not a
        # multiple of 3: the same value is written twice)
        for k in range(0, width, 3):
            k1 = min(k + 1, width - 1)
            k2 = min(k + 2, width - 1)
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            u0 = 0.0
            u1 = 0.0
            u2 = 0.0
            u3 = 0.0
            for j in range(dimension):
                p = product[k, j]
                pp = product[k1, j]
                ppp = product[k2, j]
                r0 = residuals[0, j]
                r1 = residuals[1, j]
                r2 = residuals[2, j]
                r3 = residuals[3, j]
                s0 += r0 * p
                s1 += r1 * p
                s2 += r2 * p
                s3 += r3 * p
                t0 += r0 * pp
                t1 += r1 * pp
                t2 += r2 * pp
                t3 += r3 * pp
                u0 += r0 * ppp
                u1 += r1 * ppp
                u2 += r2 * ppp
                u3 += r3 * ppp
            _store4(columns, k, first, count, s0, s1, s2, s3)
            _store4(columns, k1, first, count, t0, t1, t2, t3)
            _store4(columns, k2, first, count, u0, u1, u2, u3)


@njit(inline="always")
def _store4(columns, row, first, count, v0, v1, v2, v3):  # pragma: no cover - compiled
    columns[row, first] = v0
    if count > 1:
        columns[row, first + 1] = v1
    if count > 2:
        columns[row, first + 2] = v2
    if count > 3:
        columns[row, first + 3] = v3


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def residuals_columns(block, first, labels, means_t, residuals, squares
                      ):  # pragma: no cover - compiled
    """residuals[:, i] = z − μ_y (float64) and squares[i] = its squared norm for the columns
    z = block[:, first + i], y = labels[i], i < residuals.shape[1]; ``means_t`` (d, K)."""
    dimension = block.shape[0]
    size = residuals.shape[1]
    for i in range(size):
        squares[i] = 0.0
    for j in range(dimension):
        for i in range(size):
            value = np.float64(block[j, first + i]) - means_t[j, labels[i]]
            residuals[j, i] = value
            squares[i] += value * value


@njit(cache=True, nogil=True)
def nc4_decisions(on_means, raw_scores, labels, pair_distances, mean_scores, squares, scale,
                  mean_norm, weight_norm, bias_max, unsure):  # pragma: no cover - compiled
    """NC4 decisions and ERR of a block of n samples (docs/theory.md §3, NC4 and ERR).

    ``on_means`` (n, K): (Uᵀr_i)ᵀ(Uᵀμ_c), so that the squared distance to centre c, up to the
    per-sample constant ‖r_i‖², is ‖μ_y − μ_c‖² − 2 (on_means[i, c] − on_means[i, y]);
    ``raw_scores`` (n, K): W r_i, so that the scores are W r_i + (W μ_y + b) (``mean_scores``
    row y). Returns (agreements among the samples outside the rounding band,
    Σ_i ‖s_i − e_{y_i}‖², number of samples in the band); the band's sample indices are written
    to ``unsure``. Ties go to the lowest class index, as argmin/argmax do. O(K) per sample: the
    products with Uᵀμ_c come from one BLAS product before the call.
    """
    size, classes = on_means.shape
    agreements = 0
    residual = 0.0
    band = 0
    for i in range(size):
        y = labels[i]
        own = on_means[i, y]
        nearest = 0
        best = np.inf
        second = np.inf
        predicted = 0
        top = -np.inf
        runner = -np.inf
        for c in range(classes):
            distance = pair_distances[c, y] - 2.0 * (on_means[i, c] - own)
            if distance < best:
                second = best
                best = distance
                nearest = c
            elif distance < second:
                second = distance
            score = raw_scores[i, c] + mean_scores[y, c]
            if score > top:
                runner = top
                top = score
                predicted = c
            elif score > runner:
                runner = score
            target = score - 1.0 if c == y else score
            residual += target * target
        norm = np.sqrt(squares[i])
        distance_bound = scale * (norm + 2.0 * mean_norm) ** 2
        score_bound = scale * (weight_norm * (norm + mean_norm) + bias_max)
        if second - best <= distance_bound or top - runner <= score_bound:
            unsure[band] = i
            band += 1
        elif nearest == predicted:
            agreements += 1
    return agreements, residual, band
