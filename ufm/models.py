"""Objectives of the unconstrained-features models (docs/theory.md §2) with exact gradients.

Every model uses the one loss convention of docs/theory.md §1.2,

    Φ(θ) = (1/(2N))‖F(θ) − Y‖_F²  +  Σ_j (λ_j/2)‖θ_j‖_F²,

with F(θ) ∈ R^{K×N} the output, Y = I_K ⊗ 1_nᵀ the one-hot targets (balanced layout ordered by
class) and θ_j the parameter blocks (the free features H₁ and the weight matrices W_1..W_L);
biases are unregularized.

Models (frozen dataclasses, validated on construction):

- :class:`UFM` — docs/theory.md §2(a), one layer, optional bias.
- :class:`DeepLinearUFM` — §2(b), L linear layers on free features.
- :class:`DeepUFM` — §2(c), the L-DUFM of Súkeník et al. (2023, 2024): ReLU after W_1..W_{L−1}.
- :class:`LinearHead` — §2(d), L2 linear layers on fixed features.

All parameters travel in one container, :class:`Parameters`: ``features`` = H₁ of shape (d_1, N)
(``None`` for the fixed-feature head), ``weights[l-1]`` = W_l of shape (d_{l+1}, d_l) with
d_{L+1} = K, and ``bias`` of shape (K,) or ``None``. The blocks are ordered
(H₁, W_1, …, W_L, b); :attr:`penalty_weights` and :attr:`ObjectiveParts.penalties` follow that
order (the bias has weight 0).

Each model computes in float64 numpy (``objective``, ``gradient``, ``value_and_gradient``,
``forward``) and in torch (``torch_objective``, ``value_and_gradient_torch``) on any device.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np

from .arrays import as_float64_matrix, check_positive_scalar, is_torch_tensor, to_numpy
from .labels import balanced_labels, check_num_classes, one_hot_targets, validate_labels

__all__ = [
    "Parameters",
    "ObjectiveParts",
    "LayerFeatures",
    "UFM",
    "DeepLinearUFM",
    "DeepUFM",
    "LinearHead",
]


# --------------------------------------------------------------------------------------------
# Parameter container
# --------------------------------------------------------------------------------------------


def _import_torch():
    import torch  # imported lazily: ``ufm`` works without torch until a tensor path is used

    return torch


def _as_block(value: Any, name: str):
    """Return a block as a float64 numpy array, or a floating torch tensor unchanged."""
    if is_torch_tensor(value):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
        return value
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Parameters:
    """All parameter blocks of a model: free features, weight matrices and bias.

    Parameters
    ----------
    features : ndarray or torch.Tensor of shape (d_1, N), or None
        The free features H₁ (columns are samples). ``None`` for models with fixed features
        (:class:`LinearHead`).
    weights : tuple of ndarray or torch.Tensor
        ``weights[l-1]`` is W_l of shape (d_{l+1}, d_l), l = 1..L, with d_{L+1} = K.
    bias : ndarray or torch.Tensor of shape (K,), or None
        The unregularized output bias b (only :class:`UFM` with ``bias=True``).

    Notes
    -----
    Blocks are stored as float64 numpy arrays (array-likes are converted) or as torch tensors
    (kept as given, so that a CUDA tensor stays on its device). The block order used by
    :meth:`blocks`, :meth:`flatten` and every model's ``penalty_weights`` is
    (H₁, W_1, …, W_L, b), skipping absent blocks.

    Arithmetic acts block-wise: ``p + q``, ``p - q``, ``-p``, ``a * p``, ``p / a``,
    ``p.axpy(a, q)`` = p + a·q, ``p.inner(q)`` = Σ_j ⟨p_j, q_j⟩ and ``p.norm()`` = √(p.inner(p)).
    """

    features: Any = None
    weights: tuple = ()
    bias: Any = None

    def __post_init__(self) -> None:
        weights = self.weights
        if isinstance(weights, np.ndarray) or is_torch_tensor(weights):
            raise TypeError("weights must be a sequence of matrices (a tuple), not one array")
        try:
            weights = tuple(weights)
        except TypeError:
            raise TypeError(f"weights must be a sequence of matrices, got {weights!r}") from None
        weights = tuple(_as_block(w, f"weights[{i}]") for i, w in enumerate(weights))
        features = None if self.features is None else _as_block(self.features, "features")
        bias = None if self.bias is None else _as_block(self.bias, "bias")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "bias", bias)
        kinds = {is_torch_tensor(block) for block in self.blocks()}
        if len(kinds) > 1:
            raise TypeError("Parameters must hold either only numpy arrays or only torch tensors")

    # -- structure ------------------------------------------------------------------------

    def blocks(self) -> tuple:
        """The blocks in the order (H₁, W_1, …, W_L, b), absent blocks skipped."""
        out = []
        if self.features is not None:
            out.append(self.features)
        out.extend(self.weights)
        if self.bias is not None:
            out.append(self.bias)
        return tuple(out)

    def block_names(self) -> tuple[str, ...]:
        """Names of :meth:`blocks`: ``"H1"``, ``"W1"`` … ``"WL"``, ``"b"``."""
        names = []
        if self.features is not None:
            names.append("H1")
        names.extend(f"W{l}" for l in range(1, len(self.weights) + 1))
        if self.bias is not None:
            names.append("b")
        return tuple(names)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of :meth:`blocks`."""
        return tuple(tuple(block.shape) for block in self.blocks())

    @property
    def size(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(math.prod(shape) for shape in self.shapes))

    @property
    def num_layers(self) -> int:
        """L, the number of weight matrices."""
        return len(self.weights)

    @property
    def is_torch(self) -> bool:
        """True if the blocks are torch tensors."""
        return any(is_torch_tensor(block) for block in self.blocks())

    @classmethod
    def _unchecked(cls, features: Any, weights: tuple, bias: Any = None) -> "Parameters":
        """A Parameters holding the given blocks as they are, without validation or conversion.

        For internal hot paths (gradient steps, objective evaluations) whose blocks are known to
        be valid: float64 numpy arrays (or torch tensors of one kind), ``weights`` a tuple. The
        result equals ``Parameters(features, weights, bias)`` block for block, which is the
        validating constructor for every other use.
        """
        params = object.__new__(cls)
        object.__setattr__(params, "features", features)
        object.__setattr__(params, "weights", weights)
        object.__setattr__(params, "bias", bias)
        return params

    def _is_float64_numpy(self) -> bool:
        """True if every block is a float64 numpy array (what the validating constructor makes
        of array-likes), i.e. numpy arithmetic on the blocks yields valid blocks again."""
        for block in self.blocks():
            if type(block) is not np.ndarray or block.dtype != np.float64:
                return False
        return True

    def _rebuild(self, blocks: Sequence[Any], *, checked: bool = True) -> "Parameters":
        """A Parameters with this structure and the given blocks (in :meth:`blocks` order).

        ``checked=False`` skips validation; only for blocks known to be valid (see
        :meth:`_unchecked`).
        """
        blocks = list(blocks)
        features = blocks.pop(0) if self.features is not None else None
        bias = blocks.pop() if self.bias is not None else None
        if not checked:
            return Parameters._unchecked(features, tuple(blocks), bias)
        return Parameters(features=features, weights=tuple(blocks), bias=bias)

    def map(self, function: Callable[[Any], Any]) -> "Parameters":
        """Apply ``function`` to every block and return the new Parameters."""
        return self._rebuild([function(block) for block in self.blocks()])

    def _map_arithmetic(self, function: Callable[[Any], Any]) -> "Parameters":
        """:meth:`map` for a numpy ufunc expression of one block: float64 arrays in, float64
        arrays out, so that validation is skipped for float64 numpy blocks."""
        checked = not self._is_float64_numpy()
        return self._rebuild([function(block) for block in self.blocks()], checked=checked)

    def _same_structure(self, other: "Parameters") -> bool:
        """True if ``other`` has the same blocks (names) of the same shapes."""
        if (
            (self.features is None) != (other.features is None)
            or (self.bias is None) != (other.bias is None)
            or len(self.weights) != len(other.weights)
        ):
            return False
        return all(
            tuple(a.shape) == tuple(b.shape) for a, b in zip(self.blocks(), other.blocks())
        )

    def _check_same_structure(self, other: "Parameters") -> None:
        if not self._same_structure(other):
            raise ValueError(
                f"Parameters of different structure: {self.block_names()} {self.shapes} vs "
                f"{other.block_names()} {other.shapes}"
            )

    def _zip_map(self, other: "Parameters", function: Callable[[Any, Any], Any]) -> "Parameters":
        """Apply ``function`` to matching blocks of ``self`` and ``other`` (same structure).

        Validation of the result is skipped when both hold float64 numpy blocks: the functions
        used here (sums, differences, scaled sums) then return float64 arrays.
        """
        if not isinstance(other, Parameters):
            return NotImplemented
        self._check_same_structure(other)
        checked = not (self._is_float64_numpy() and other._is_float64_numpy())
        return self._rebuild(
            [function(a, b) for a, b in zip(self.blocks(), other.blocks())], checked=checked
        )

    # -- arithmetic -----------------------------------------------------------------------

    def __add__(self, other: "Parameters") -> "Parameters":
        return self._zip_map(other, lambda a, b: a + b)

    def __sub__(self, other: "Parameters") -> "Parameters":
        return self._zip_map(other, lambda a, b: a - b)

    def __neg__(self) -> "Parameters":
        return self._map_arithmetic(lambda a: -a)

    def __mul__(self, scalar: Any) -> "Parameters":
        if not isinstance(scalar, numbers.Real):
            return NotImplemented
        scalar = float(scalar)
        return self._map_arithmetic(lambda a: a * scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar: Any) -> "Parameters":
        if not isinstance(scalar, numbers.Real):
            return NotImplemented
        scalar = float(scalar)
        return self._map_arithmetic(lambda a: a / scalar)

    def axpy(self, alpha: float, other: "Parameters") -> "Parameters":
        """Return self + alpha·other (e.g. a gradient step ``p.axpy(-eta, grad)``)."""
        alpha = float(alpha)
        return self._zip_map(other, lambda a, b: a + alpha * b)

    def inner(self, other: "Parameters") -> float:
        """Σ_j ⟨θ_j, φ_j⟩_F over all blocks, as a Python float.

        Each block's product is summed in float64 (numpy ``vdot`` for numpy blocks), and the
        block sums are added in block order.
        """
        if not isinstance(other, Parameters):
            raise TypeError(f"other must be a Parameters, got {type(other).__name__}")
        self._check_same_structure(other)
        if self._is_float64_numpy() and other._is_float64_numpy():
            return float(
                sum(float(np.vdot(a, b)) for a, b in zip(self.blocks(), other.blocks()))
            )
        products = self._zip_map(other, lambda a, b: (a * b).sum())
        return float(sum(float(to_numpy(p)) for p in products.blocks()))

    def norm(self) -> float:
        """‖θ‖ = (Σ_j ‖θ_j‖_F²)^{1/2} over all blocks."""
        return math.sqrt(self.inner(self))

    def copy(self) -> "Parameters":
        """A deep copy (numpy ``copy`` or torch ``clone``)."""
        if self._is_float64_numpy():
            return self._map_arithmetic(lambda a: np.array(a, copy=True))
        return self.map(
            lambda a: a.detach().clone() if is_torch_tensor(a) else np.array(a, copy=True)
        )

    def zeros_like(self) -> "Parameters":
        """Parameters of the same structure with every entry 0."""
        if self._is_float64_numpy():
            return self._map_arithmetic(np.zeros_like)
        return self.map(lambda a: a.new_zeros(a.shape) if is_torch_tensor(a) else np.zeros_like(a))

    # -- vector form ----------------------------------------------------------------------

    def flatten(self) -> np.ndarray:
        """All blocks as one float64 vector (row-major, :meth:`blocks` order), e.g. for scipy.

        Torch blocks are moved to the CPU first.
        """
        blocks = [np.asarray(to_numpy(block), dtype=np.float64).ravel() for block in self.blocks()]
        if not blocks:
            return np.zeros(0, dtype=np.float64)
        return np.concatenate(blocks)

    def unflatten(self, vector: Any) -> "Parameters":
        """Inverse of :meth:`flatten`: numpy Parameters of this structure filled from ``vector``."""
        vector = np.asarray(to_numpy(vector), dtype=np.float64)
        if vector.ndim != 1 or vector.size != self.size:
            raise ValueError(
                f"vector must be 1-D with {self.size} entries for shapes {self.shapes}, "
                f"got shape {vector.shape}"
            )
        blocks, start = [], 0
        for shape in self.shapes:
            count = math.prod(shape)
            blocks.append(vector[start : start + count].reshape(shape).copy())
            start += count
        return self._rebuild(blocks)

    @classmethod
    def from_vector(cls, vector: Any, like: "Parameters") -> "Parameters":
        """Parameters with the structure of ``like`` filled from ``vector`` (:meth:`flatten`)."""
        return like.unflatten(vector)

    # -- torch ----------------------------------------------------------------------------

    def to_torch(self, device: Any = None, dtype: Any = None, requires_grad: bool = False):
        """Parameters of torch tensors (float64 by default) on ``device`` (CPU by default).

        With ``requires_grad=True`` every block is a fresh leaf tensor that tracks gradients.
        """
        torch = _import_torch()
        dtype = torch.float64 if dtype is None else dtype

        def convert(block):
            if is_torch_tensor(block):
                tensor = block.detach().to(device=device, dtype=dtype)
                if requires_grad:
                    tensor = tensor.clone()
            else:
                tensor = torch.tensor(np.array(block), dtype=dtype, device=device)  # a copy
            if requires_grad:
                tensor.requires_grad_(True)
            return tensor

        return self.map(convert)

    def to_numpy(self) -> "Parameters":
        """Parameters of float64 numpy arrays (tensors are detached and moved to the CPU)."""
        return self.map(lambda a: np.array(to_numpy(a), dtype=np.float64, copy=True))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectiveParts:
    """The terms of Φ (docs/theory.md §1.2).

    Attributes
    ----------
    fit : float
        (1/(2N))‖F − Y‖_F².
    penalties : tuple of float
        (λ_j/2)‖θ_j‖_F² per block in :meth:`Parameters.blocks` order (0 for the bias).
    total : float
        fit + Σ penalties.
    names : tuple of str
        Block names of ``penalties`` (``"H1"``, ``"W1"``, …, ``"b"``).
    """

    fit: float
    penalties: tuple[float, ...]
    total: float
    names: tuple[str, ...] = ()

    @property
    def penalty(self) -> float:
        """Σ_j (λ_j/2)‖θ_j‖_F²."""
        return float(sum(self.penalties))

    def to_dict(self) -> dict:
        """JSON-serializable dictionary."""
        return {
            "fit": self.fit,
            "penalties": list(self.penalties),
            "penalty": self.penalty,
            "total": self.total,
            "names": list(self.names),
        }


@dataclass(frozen=True, eq=False)
class LayerFeatures:
    """Features at every layer of a forward pass, as lists indexed by layer l = 1..L.

    Attributes
    ----------
    pre_activations : list of ndarray
        ``pre_activations[l-1]`` = H̃_l = W_{l−1}H_{l−1}, shape (d_l, N), for l ≥ 2; for l = 1 it
        is the input H₁ (free features) or Z (fixed features) itself.
    post_activations : list of ndarray
        ``post_activations[l-1]`` = H_l, the input of W_l, shape (d_l, N): σ(H̃_l) after a ReLU,
        H̃_l after a linear layer.
    output : ndarray of shape (K, N)
        F = W_LH_L (+ b1ᵀ).
    labels : ndarray of shape (N,)
        Integer class labels of the columns.
    num_classes : int
        K.
    """

    pre_activations: list
    post_activations: list
    output: np.ndarray
    labels: np.ndarray
    num_classes: int

    @property
    def num_layers(self) -> int:
        """L, the number of weight matrices (= number of feature layers)."""
        return len(self.post_activations)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_positive_integer(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_widths(widths: Any, name: str = "widths") -> tuple[int, ...]:
    if isinstance(widths, (int, np.integer)) and not isinstance(widths, bool):
        raise TypeError(f"{name} must be a sequence of widths (d_1, ..., d_L), got {widths!r}")
    try:
        values = tuple(widths)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of layer widths, got {widths!r}") from None
    if len(values) == 0:
        raise ValueError(f"{name} must hold at least one width (L >= 1)")
    return tuple(_check_positive_integer(w, f"{name}[{i}]") for i, w in enumerate(values))


def _check_lambdas(value: Any, count: int, name: str) -> tuple[float, ...]:
    """λ given as one number (same for every layer) or a sequence of ``count`` numbers ≥ 0."""
    if isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0):
        number = check_positive_scalar(value, name)
        return (number,) * count
    if isinstance(value, str):
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}")
    try:
        values = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
    if len(values) != count:
        raise ValueError(f"{name} must have one value per layer ({count}), got {len(values)}")
    return tuple(check_positive_scalar(v, f"{name}[{i}]") for i, v in enumerate(values))


def _make_rng(rng_or_seed: Any) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.RandomState):
        raise TypeError("pass a numpy Generator or an integer seed, not a legacy RandomState")
    return np.random.default_rng(rng_or_seed)


def _relu_numpy(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _squared_norm(block: np.ndarray) -> float:
    """‖block‖_F² of a float64 numpy array (one BLAS dot product of the flattened array)."""
    return float(np.vdot(block, block))


# --------------------------------------------------------------------------------------------
# Shared implementation of a chain F = W_L a_{L−1}(W_{L−1} ⋯ a_1(W_1 H_1)) (+ b1ᵀ)
# --------------------------------------------------------------------------------------------


class _ChainObjective:
    """Objective, gradient and forward pass of a layered model, shared by every model class.

    Subclasses provide ``_relu_after`` (one bool per W_1..W_{L−1}: ReLU on its output),
    ``_has_free_features``, ``_has_bias``, ``_lam_features``, ``_lam_weights``,
    ``_fixed_features`` and the attributes ``num_classes``, ``labels``, ``targets``,
    ``widths``.
    """

    # -- structure ------------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        """L, the number of weight matrices."""
        return len(self.widths)

    @property
    def num_samples(self) -> int:
        """N, the number of samples (columns)."""
        return int(self.labels.shape[0])

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """(d_1, …, d_L, d_{L+1} = K)."""
        return tuple(self.widths) + (self.num_classes,)

    @property
    def penalty_weights(self) -> tuple[float, ...]:
        """λ per block in :meth:`Parameters.blocks` order: (λ_H, λ_1, …, λ_L[, 0 for b])."""
        out = []
        if self._has_free_features:
            out.append(self._lam_features)
        out.extend(self._lam_weights)
        if self._has_bias:
            out.append(0.0)
        return tuple(out)

    @property
    def block_names(self) -> tuple[str, ...]:
        """Names of the blocks: ``"H1"``, ``"W1"``, …, ``"WL"``, ``"b"``."""
        names = ["H1"] if self._has_free_features else []
        names.extend(f"W{l}" for l in range(1, self.num_layers + 1))
        if self._has_bias:
            names.append("b")
        return tuple(names)

    @property
    def parameter_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the blocks in :meth:`Parameters.blocks` order."""
        shapes = []
        widths = self.layer_widths
        if self._has_free_features:
            shapes.append((widths[0], self.num_samples))
        shapes.extend((widths[l + 1], widths[l]) for l in range(self.num_layers))
        if self._has_bias:
            shapes.append((self.num_classes,))
        return tuple(shapes)

    @property
    def num_parameters(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(math.prod(shape) for shape in self.parameter_shapes))

    def zeros(self) -> Parameters:
        """The all-zero point of this model (for L ≥ 2 a strict local minimum, docs/theory.md §4.3)."""
        widths = self.layer_widths
        features = (
            np.zeros((widths[0], self.num_samples)) if self._has_free_features else None
        )
        weights = tuple(np.zeros((widths[l + 1], widths[l])) for l in range(self.num_layers))
        bias = np.zeros(self.num_classes) if self._has_bias else None
        return Parameters(features=features, weights=weights, bias=bias)

    def unflatten(self, vector: Any) -> Parameters:
        """Parameters of this model from a flat float64 vector (``Parameters.flatten`` layout)."""
        vector = np.asarray(to_numpy(vector), dtype=np.float64)
        if vector.ndim != 1 or vector.size != self.num_parameters:
            raise ValueError(
                f"vector must be 1-D with {self.num_parameters} entries for shapes "
                f"{self.parameter_shapes}, got shape {vector.shape}"
            )
        blocks, start = [], 0
        for shape in self.parameter_shapes:
            count = math.prod(shape)
            blocks.append(vector[start : start + count].reshape(shape).copy())
            start += count
        features = blocks.pop(0) if self._has_free_features else None
        bias = blocks.pop() if self._has_bias else None
        return Parameters(features=features, weights=tuple(blocks), bias=bias)

    def random_parameters(
        self, rng_or_seed: Any = None, scale: float = 1.0, *, feature_std: float = 0.1
    ) -> Parameters:
        """Random initial point (docs/theory.md E-B1).

        W_l ~ U(−scale/√d_l, scale/√d_l) entrywise (d_l = input width of W_l),
        H₁ ~ N(0, (scale·feature_std)²) entrywise (its absolute value for a
        :class:`DeepUFM` with ``nonneg_H1``, so that the point is feasible), b = 0.

        Parameters
        ----------
        rng_or_seed : numpy.random.Generator, int or None
            Source of randomness.
        scale : float
            Common factor of every block (1 gives the E-B1 initialization).
        feature_std : float
            Standard deviation of H₁ before scaling (0.1 in E-B1).
        """
        rng = _make_rng(rng_or_seed)
        scale = check_positive_scalar(scale, "scale")
        feature_std = check_positive_scalar(feature_std, "feature_std")
        widths = self.layer_widths
        features = None
        if self._has_free_features:
            features = rng.normal(0.0, scale * feature_std, size=(widths[0], self.num_samples))
            if getattr(self, "nonneg_H1", False):
                features = np.abs(features)
        weights = []
        for l in range(self.num_layers):
            bound = scale / math.sqrt(widths[l])
            weights.append(rng.uniform(-bound, bound, size=(widths[l + 1], widths[l])))
        bias = np.zeros(self.num_classes) if self._has_bias else None
        return Parameters(features=features, weights=tuple(weights), bias=bias)

    def check_parameters(self, params: Parameters) -> None:
        """Raise ``ValueError``/``TypeError`` if ``params`` does not fit this model's shapes."""
        if not isinstance(params, Parameters):
            raise TypeError(f"params must be a ufm.models.Parameters, got {type(params).__name__}")
        if self._has_free_features and params.features is None:
            raise ValueError("params.features (H1) is required by this model, got None")
        if not self._has_free_features and params.features is not None:
            raise ValueError("params.features must be None: this model's features are fixed")
        if self._has_bias and params.bias is None:
            raise ValueError("params.bias is required (model has bias=True), got None")
        if not self._has_bias and params.bias is not None:
            raise ValueError("params.bias must be None: this model has no bias")
        if len(params.weights) != self.num_layers:
            raise ValueError(
                f"params.weights must hold L = {self.num_layers} matrices, "
                f"got {len(params.weights)}"
            )
        for name, shape, expected in zip(
            params.block_names(), params.shapes, self.parameter_shapes
        ):
            if tuple(shape) != tuple(expected):
                raise ValueError(f"params block {name} must have shape {expected}, got {shape}")

    def project(self, params: Parameters) -> Parameters:
        """Projection onto the feasible set (identity unless a constraint is set).

        :class:`DeepUFM` with ``nonneg_H1=True`` returns H₁ ← max(H₁, 0); solvers call this after
        every step (projected gradient descent, docs/theory.md §2(c)).
        """
        return params

    # -- numpy path -----------------------------------------------------------------------

    @cached_property
    def _numpy_plan(self) -> tuple:
        """Constants of the numpy path, computed once per model: (ReLU flags, λ_1..λ_L, λ_H,
        λ per block, has free features, has bias, N)."""
        return (
            tuple(self._relu_after),
            tuple(self._lam_weights),
            float(self._lam_features),
            tuple(self.penalty_weights),
            bool(self._has_free_features),
            bool(self._has_bias),
            self.num_samples,
        )

    def _checked_numpy(self, params: Parameters) -> Parameters:
        """``params`` validated against this model and as float64 numpy blocks."""
        self.check_parameters(params)
        if params.is_torch:
            params = params.to_numpy()
        return params

    def _forward_numpy(self, params: Parameters):
        """Forward pass without validation: (pre-activations, post-activations, output).

        ``params`` must be float64 numpy Parameters of this model's shapes.
        """
        relu_after, _, _, _, free_features, has_bias, _ = self._numpy_plan
        h = params.features if free_features else self._fixed_features
        pre, post = [h], [h]
        weights = params.weights
        for l in range(len(weights) - 1):
            z = weights[l] @ h
            h = _relu_numpy(z) if relu_after[l] else z
            pre.append(z)
            post.append(h)
        output = weights[-1] @ h
        if has_bias:
            output = output + params.bias[:, None]
        return pre, post, output

    def _forward_arrays(self, params: Parameters):
        """Numpy forward pass: (params as numpy, pre-activations, post-activations, output)."""
        params = self._checked_numpy(params)
        pre, post, output = self._forward_numpy(params)
        return params, pre, post, output

    def forward(self, params: Parameters) -> LayerFeatures:
        """Features at every layer and the output F (see :class:`LayerFeatures`).

        Parameters
        ----------
        params : Parameters
            A point of this model (numpy or torch; torch is converted to numpy).
        """
        _, pre, post, output = self._forward_arrays(params)
        return LayerFeatures(
            pre_activations=pre,
            post_activations=post,
            output=output,
            labels=self.labels,
            num_classes=self.num_classes,
        )

    def _penalties_numpy(self, params: Parameters) -> tuple[float, ...]:
        """(λ_j/2)‖θ_j‖_F² per block (0 where λ_j = 0)."""
        return tuple(
            0.5 * lam * _squared_norm(block) if lam != 0.0 else 0.0
            for lam, block in zip(self._numpy_plan[3], params.blocks())
        )

    def _parts_from(self, params: Parameters, output: np.ndarray) -> ObjectiveParts:
        fit = _squared_norm(output - self.targets) / (2.0 * self.num_samples)
        penalties = self._penalties_numpy(params)
        return ObjectiveParts(
            fit=fit,
            penalties=penalties,
            total=fit + math.fsum(penalties),
            names=params.block_names(),
        )

    def objective(self, params: Parameters) -> ObjectiveParts:
        """Φ(θ) = (1/(2N))‖F − Y‖_F² + Σ_j (λ_j/2)‖θ_j‖_F² split into its terms (docs/theory.md §1.2).

        Returns
        -------
        ObjectiveParts
            ``fit``, ``penalties`` (per block) and ``total``.
        """
        params, _, _, output = self._forward_arrays(params)
        return self._parts_from(params, output)

    def value_and_gradient(self, params: Parameters) -> tuple[float, Parameters]:
        """Φ(θ) and its exact gradient ∇Φ(θ) (float64 numpy), by backpropagation.

        With R = (F − Y)/N and G_L = R:
        ∇_{W_l} = G_l H_lᵀ + λ_l W_l, G_{l−1} = (W_lᵀ G_l) ⊙ 1[H̃_l > 0] after a ReLU (the
        subgradient 1[x > 0]) or W_lᵀG_l after a linear layer, ∇_{H₁} = W_1ᵀG_1 + λ_H H₁,
        ∇_b = R1_N.

        Returns
        -------
        value : float
            Φ(θ), equal to ``objective(params).total``.
        gradient : Parameters
            ∇Φ(θ) with the structure of ``params``.
        """
        return self._value_and_gradient_numpy(self._checked_numpy(params))

    def _value_and_gradient_numpy(self, params: Parameters) -> tuple[float, Parameters]:
        """:meth:`value_and_gradient` without validation, for solvers' inner loops.

        ``params`` must be float64 numpy Parameters of this model's shapes (as checked once by
        :meth:`check_parameters`); the result is the same, bit for bit.
        """
        relu_after, _, _, _, _, _, count = self._numpy_plan
        pre, post, output = self._forward_numpy(params)
        residual = output - self.targets
        fit = _squared_norm(residual) / (2.0 * count)
        value = fit + math.fsum(self._penalties_numpy(params))
        residual /= count  # R = (F − Y)/N
        # σ'(z) = 1[z > 0] (the subgradient of the ReLU at its kink is taken as 0)
        slopes = [None] + [pre[l + 1] > 0.0 if relu else None for l, relu in enumerate(relu_after)]
        return value, self._backward_numpy(params, post, slopes, residual)

    def _backward_numpy(self, params: Parameters, post: list, slopes: list, residual: np.ndarray):
        """∇Φ by backpropagation of R = (F − Y)/N through the chain.

        ``post[l]`` is the input of W_{l+1}; ``slopes[l]`` the derivative of the activation that
        produced it (None for the identity), applied as G_{l−1} = (W_lᵀG_l) ⊙ slopes[l].
        """
        _, lams, lam_features, _, free_features, has_bias, _ = self._numpy_plan
        weights = params.weights
        grad_weights: list = [None] * len(weights)
        upstream = residual
        for l in range(len(weights) - 1, -1, -1):
            grad = upstream @ post[l].T
            if lams[l] != 0.0:
                grad += lams[l] * weights[l]
            grad_weights[l] = grad
            if l > 0:
                upstream = weights[l].T @ upstream  # a new array: R itself is never modified
                if slopes[l] is not None:
                    upstream *= slopes[l]
        grad_features = None
        if free_features:
            grad_features = weights[0].T @ upstream
            grad_features += lam_features * params.features
        grad_bias = residual.sum(axis=1) if has_bias else None
        return Parameters._unchecked(grad_features, tuple(grad_weights), grad_bias)

    def smoothed_value_and_gradient(
        self, params: Parameters, smoothing: float
    ) -> tuple[float, Parameters]:
        """Φ_ε(θ), Φ with every ReLU replaced by its C¹ quadratic smoothing, and ∇Φ_ε(θ).

            σ_ε(z) = 0 (z ≤ −ε),  (z + ε)²/(4ε) (``|z| < ε``),  z (z ≥ ε);
            σ_ε'(z) = clip((z + ε)/(2ε), 0, 1),  0 ≤ σ_ε(z) − max(z, 0) ≤ ε/4.

        Φ_ε is continuously differentiable and tends to Φ uniformly on bounded sets as ε → 0;
        ε = 0 gives Φ and its gradient (:meth:`value_and_gradient`) bit for bit. Models without
        ReLU return Φ for every ε. Used by the smoothing phase of the ``kink_lbfgs`` solver
        (:func:`ufm.solvers.solve`), which follows the minimizers of Φ_ε down to ε ≈ 0 instead
        of zigzagging on the kinks of Φ. Φ_ε is not an objective of (A)–(C): it is a numerical
        device of this package; the shapes of ``params`` and of the gradient are the model's
        (:attr:`parameter_shapes`).

        Parameters
        ----------
        params : Parameters
            A point of this model.
        smoothing : float
            ε ≥ 0, in units of the pre-activations.

        Returns
        -------
        value : float
            Φ_ε(θ).
        gradient : Parameters
            ∇Φ_ε(θ) with the structure of ``params``.
        """
        smoothing = check_positive_scalar(smoothing, "smoothing")  # ε ≥ 0
        value, gradient, _ = self._smoothed_value_and_gradient_numpy(
            self._checked_numpy(params), smoothing
        )
        return value, gradient

    def _smoothed_value_and_gradient_numpy(
        self, params: Parameters, smoothing: float
    ) -> tuple[float, Parameters, float]:
        """(Φ_ε, ∇Φ_ε, Φ) without validation (``params`` float64 numpy of this model's shapes).

        Φ itself comes from a second forward pass from the first ReLU on (the features differ
        after it), so that solvers can report the true objective of every iterate.
        """
        if smoothing == 0.0 or not any(self._numpy_plan[0]):
            value, gradient = self._value_and_gradient_numpy(params)
            return value, gradient, value
        relu_after, _, _, _, free_features, has_bias, count = self._numpy_plan
        width = smoothing
        h = params.features if free_features else self._fixed_features
        true_h = h
        post, slopes = [h], [None]
        weights = params.weights
        for l in range(len(weights) - 1):
            z = weights[l] @ h
            true_z = z if true_h is h else weights[l] @ true_h
            if relu_after[l]:
                shifted = z + width
                slope = np.clip(shifted / (2.0 * width), 0.0, 1.0)  # σ_ε'(z)
                h = np.where(z >= width, z, 0.5 * slope * shifted)  # (z+ε)²/(4ε) inside
                true_h = _relu_numpy(true_z)
            else:
                slope, h, true_h = None, z, true_z
            post.append(h)
            slopes.append(slope)
        output = weights[-1] @ h
        true_output = output if true_h is h else weights[-1] @ true_h
        if has_bias:
            output = output + params.bias[:, None]
            true_output = true_output + params.bias[:, None]
        penalty = math.fsum(self._penalties_numpy(params))
        true_value = _squared_norm(true_output - self.targets) / (2.0 * count) + penalty
        residual = output - self.targets
        value = _squared_norm(residual) / (2.0 * count) + penalty
        residual /= count
        gradient = self._backward_numpy(params, post, slopes, residual)
        return value, gradient, true_value

    def gradient(self, params: Parameters) -> Parameters:
        """Exact gradient ∇Φ(θ) (see :meth:`value_and_gradient`)."""
        return self.value_and_gradient(params)[1]

    def _unflatten_views(self, vector: np.ndarray) -> Parameters:
        """Parameters whose blocks are reshaped views of a float64 vector of the right size
        (no copy, no validation), for evaluations inside solvers."""
        blocks, start = [], 0
        for shape in self.parameter_shapes:
            count = math.prod(shape)
            blocks.append(vector[start : start + count].reshape(shape))
            start += count
        features = blocks.pop(0) if self._has_free_features else None
        bias = blocks.pop() if self._has_bias else None
        return Parameters._unchecked(features, tuple(blocks), bias)

    def value_and_gradient_vector(self, vector: Any) -> tuple[float, np.ndarray]:
        """Φ and ∇Φ on flat float64 vectors (``Parameters.flatten`` layout), e.g. for
        ``scipy.optimize.minimize(..., jac=True)``."""
        vector = np.asarray(to_numpy(vector), dtype=np.float64)
        if vector.ndim != 1 or vector.size != self.num_parameters:
            raise ValueError(
                f"vector must be 1-D with {self.num_parameters} entries for shapes "
                f"{self.parameter_shapes}, got shape {vector.shape}"
            )
        value, gradient = self._value_and_gradient_numpy(self._unflatten_views(vector))
        return value, np.concatenate([block.ravel() for block in gradient.blocks()])

    # -- torch path -----------------------------------------------------------------------

    def _torch_constants(self, device: Any, dtype: Any):
        """Targets (and fixed features) as tensors on ``device``, cached per (device, dtype)."""
        torch = _import_torch()
        key = (str(torch.device(device) if device is not None else "cpu"), str(dtype))
        cache = self.__dict__.setdefault("_torch_cache", {})
        if key not in cache:
            targets = torch.tensor(np.array(self.targets), dtype=dtype, device=device)
            fixed = None
            if not self._has_free_features:
                fixed = torch.tensor(np.array(self._fixed_features), dtype=dtype, device=device)
            cache[key] = (targets, fixed)
        return cache[key]

    def torch_objective(self, params: Parameters, *, return_parts: bool = False):
        """Φ(θ) as a differentiable torch scalar (same formula as :meth:`objective`).

        Parameters
        ----------
        params : Parameters
            Blocks as torch tensors (any device and floating dtype; float64 recommended). The
            targets are created on the blocks' device and dtype.
        return_parts : bool
            If True, return ``(total, fit, penalties)`` instead of ``total`` only; ``penalties``
            is the list of (λ_j/2)‖θ_j‖² tensors of the blocks with λ_j ≠ 0, in block order.

        Notes
        -----
        The ReLU is ``torch.relu``, whose derivative at 0 is 0, i.e. the same subgradient
        1[x > 0] as the numpy gradient.
        """
        torch = _import_torch()
        self.check_parameters(params)
        if not params.is_torch:
            params = params.to_torch()
        reference = params.weights[0]
        targets, fixed = self._torch_constants(reference.device, reference.dtype)
        h = params.features if self._has_free_features else fixed
        for l, weight in enumerate(params.weights[:-1]):
            z = weight @ h
            h = torch.relu(z) if self._relu_after[l] else z
        output = params.weights[-1] @ h
        if self._has_bias:
            output = output + params.bias[:, None]
        fit = ((output - targets) ** 2).sum() / (2.0 * self.num_samples)
        penalties = [
            0.5 * lam * (block**2).sum()
            for lam, block in zip(self.penalty_weights, params.blocks())
            if lam != 0.0
        ]
        if penalties:
            penalty = sum(penalties)
        else:
            penalty = torch.zeros((), dtype=fit.dtype, device=fit.device)
        total = fit + penalty
        if return_parts:
            return total, fit, penalties
        return total

    def value_and_gradient_torch(self, params: Parameters):
        """Φ(θ) and ∇Φ(θ) by torch autograd, on the device and dtype of ``params``.

        Parameters
        ----------
        params : Parameters
            Torch tensors (numpy blocks are converted to float64 CPU tensors). They are not
            modified and need not require gradients.

        Returns
        -------
        value : torch.Tensor
            0-dim detached tensor Φ(θ).
        gradient : Parameters
            ∇Φ(θ) as tensors with the structure of ``params``.
        """
        torch = _import_torch()
        if not params.is_torch:
            params = params.to_torch()
        leaves = params.map(lambda t: t.detach().requires_grad_(True))
        with torch.enable_grad():
            total = self.torch_objective(leaves)
            grads = torch.autograd.grad(total, list(leaves.blocks()))
        return total.detach(), leaves._rebuild(list(grads))


def _frozen_array(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UFM(_ChainObjective):
    """Unconstrained-features model with one layer (docs/theory.md §2(a)).

        Φ_UFM = (1/(2N))‖WH + b1_Nᵀ − Y‖_F² + (λ_W/2)‖W‖_F² + (λ_H/2)‖H‖_F²,

    W ∈ R^{K×d}, H ∈ R^{d×N}, N = Kn, b ∈ R^K unregularized (b = 0 if ``bias=False``).
    Closed-form optimum: :func:`ufm.optima.predict_ufm` (docs/theory.md §4.1).

    Parameters
    ----------
    num_classes : int
        K ≥ 2.
    per_class : int
        n ≥ 1 samples per class (balanced, ordered by class).
    width : int
        d ≥ 1, the feature dimension (the theory assumes d ≥ K).
    lam_w, lam_h : float
        λ_W, λ_H ≥ 0.
    bias : bool
        Include the unregularized bias b.
    """

    num_classes: int
    per_class: int
    width: int
    lam_w: float
    lam_h: float
    bias: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_classes", check_num_classes(self.num_classes))
        object.__setattr__(self, "per_class", _check_positive_integer(self.per_class, "per_class"))
        object.__setattr__(self, "width", _check_positive_integer(self.width, "width"))
        object.__setattr__(self, "lam_w", check_positive_scalar(self.lam_w, "lam_w"))
        object.__setattr__(self, "lam_h", check_positive_scalar(self.lam_h, "lam_h"))
        if not isinstance(self.bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {self.bias!r}")
        object.__setattr__(self, "bias", bool(self.bias))

    _relu_after = ()
    _has_free_features = True
    _fixed_features = None

    @property
    def _has_bias(self) -> bool:
        return self.bias

    @property
    def _lam_features(self) -> float:
        return self.lam_h

    @property
    def _lam_weights(self) -> tuple[float, ...]:
        return (self.lam_w,)

    @property
    def widths(self) -> tuple[int, ...]:
        """(d,), the input width of W."""
        return (self.width,)

    @cached_property
    def labels(self) -> np.ndarray:
        """Balanced labels ordered by class, shape (N,)."""
        return _frozen_array(balanced_labels(self.num_classes, self.per_class))

    @cached_property
    def targets(self) -> np.ndarray:
        """Y = I_K ⊗ 1_nᵀ, shape (K, N)."""
        return _frozen_array(one_hot_targets(self.labels, self.num_classes))


@dataclass(frozen=True)
class _DeepFreeFeatures(_ChainObjective):
    """Common fields and validation of the deep models with free features H₁."""

    num_classes: int
    per_class: int
    widths: tuple
    lam_h: float
    lam_w: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_classes", check_num_classes(self.num_classes))
        object.__setattr__(self, "per_class", _check_positive_integer(self.per_class, "per_class"))
        widths = _check_widths(self.widths)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "lam_h", check_positive_scalar(self.lam_h, "lam_h"))
        object.__setattr__(self, "lam_w", _check_lambdas(self.lam_w, len(widths), "lam_w"))

    _has_free_features = True
    _has_bias = False
    _fixed_features = None

    @property
    def _lam_features(self) -> float:
        return self.lam_h

    @property
    def _lam_weights(self) -> tuple[float, ...]:
        return self.lam_w

    @cached_property
    def labels(self) -> np.ndarray:
        """Balanced labels ordered by class, shape (N,)."""
        return _frozen_array(balanced_labels(self.num_classes, self.per_class))

    @cached_property
    def targets(self) -> np.ndarray:
        """Y = I_K ⊗ 1_nᵀ, shape (K, N)."""
        return _frozen_array(one_hot_targets(self.labels, self.num_classes))


@dataclass(frozen=True)
class DeepLinearUFM(_DeepFreeFeatures):
    """Deep linear unconstrained-features model (docs/theory.md §2(b)).

        Φ_lin = (1/(2N))‖W_L⋯W_1H₁ − Y‖_F² + (λ_H/2)‖H₁‖_F² + Σ_l (λ_l/2)‖W_l‖_F²,

    H₁ ∈ R^{d_1×N}, W_l ∈ R^{d_{l+1}×d_l}, d_{L+1} = K. Closed-form optimum:
    :func:`ufm.optima.predict_deep_linear` (docs/theory.md §4.2).

    Parameters
    ----------
    num_classes : int
        K ≥ 2.
    per_class : int
        n ≥ 1.
    widths : sequence of int
        (d_1, …, d_L), the input width of each W_l; L = len(widths).
    lam_h : float
        λ_H ≥ 0 (penalty of H₁, a sum over samples).
    lam_w : float or sequence of float
        λ_1..λ_L ≥ 0; one number means the same λ for every layer. Stored as a tuple.
    """

    @property
    def _relu_after(self) -> tuple[bool, ...]:
        return (False,) * (self.num_layers - 1)


@dataclass(frozen=True)
class DeepUFM(_DeepFreeFeatures):
    """Deep ReLU unconstrained-features model, the L-DUFM (docs/theory.md §2(c); (B), (C)).

        Φ_DUFM = (1/(2N))‖W_Lσ(W_{L−1}σ(⋯σ(W_1H₁)⋯)) − Y‖_F² + (λ_H/2)‖H₁‖_F²
                 + Σ_{l=1}^{L} (λ_l/2)‖W_l‖_F²,

    σ = ReLU after W_1..W_{L−1} (L counts weight matrices; L = 1 is the UFM without bias), no
    biases, no ReLU on H₁ or on the output. Predicted optimum: :func:`ufm.optima.predict_dufm`
    (docs/theory.md §4.3).

    Parameters
    ----------
    num_classes, per_class, widths, lam_h, lam_w
        As in :class:`DeepLinearUFM`.
    nonneg_H1 : bool
        Constrain H₁ ≥ 0; :meth:`project` returns H₁ ← max(H₁, 0) and solvers apply it after each
        step. The objective itself is evaluated at the given H₁.
    """

    nonneg_H1: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.nonneg_H1, (bool, np.bool_)):
            raise TypeError(f"nonneg_H1 must be True or False, got {self.nonneg_H1!r}")
        object.__setattr__(self, "nonneg_H1", bool(self.nonneg_H1))

    @property
    def _relu_after(self) -> tuple[bool, ...]:
        return (True,) * (self.num_layers - 1)

    def project(self, params: Parameters) -> Parameters:
        """H₁ ← max(H₁, 0) if ``nonneg_H1``, else ``params`` unchanged (docs/theory.md §2(c))."""
        if not self.nonneg_H1:
            return params
        features = params.features
        if is_torch_tensor(features):
            features = features.clamp_min(0.0)
            return Parameters(features=features, weights=params.weights, bias=params.bias)
        if params._is_float64_numpy():
            return Parameters._unchecked(np.maximum(features, 0.0), params.weights, params.bias)
        return Parameters(
            features=np.maximum(features, 0.0), weights=params.weights, bias=params.bias
        )


@dataclass(frozen=True, eq=False)
class LinearHead(_ChainObjective):
    """L2 linear layers on fixed features (docs/theory.md §2(d)).

        Φ_head = (1/(2N))‖W_{L2}⋯W_1 Z − Y‖_F² + (λ/2) Σ_l ‖W_l‖_F²,

    Z ∈ R^{m×N} fixed (e.g. the output of the non-linear part of a network), Y the one-hot
    targets of ``labels`` (any order, possibly unbalanced). The parameters have
    ``features = None``.

    Parameters
    ----------
    features : array_like or torch.Tensor of shape (m, N)
        Z, finite real values (copied, stored read-only as float64).
    labels : array_like of int, shape (N,)
        Class of every column, in 0..K−1.
    widths : sequence of int
        (d_1 = m, d_2, …, d_{L2}), the input width of each head layer; L2 = len(widths).
    lam : float or sequence of float
        λ ≥ 0, one value for every layer or one per layer. Stored as a tuple.
    num_classes : int, optional
        K (default max(labels) + 1).
    """

    features: Any
    labels: Any
    widths: tuple
    lam: Any
    num_classes: Any = None

    def __post_init__(self) -> None:
        features = np.array(as_float64_matrix(self.features, "features"), copy=True)
        labels = validate_labels(self.labels, self.num_classes, min_per_class=0, name="labels")
        num_classes = int(labels.max()) + 1 if self.num_classes is None else self.num_classes
        num_classes = check_num_classes(num_classes)
        if labels.shape[0] != features.shape[1]:
            raise ValueError(
                f"labels must have one entry per column of features (N = {features.shape[1]}), "
                f"got {labels.shape[0]}"
            )
        widths = _check_widths(self.widths)
        if widths[0] != features.shape[0]:
            raise ValueError(
                f"widths[0] must equal the feature dimension m = {features.shape[0]}, "
                f"got {widths[0]}"
            )
        object.__setattr__(self, "features", _frozen_array(features))
        object.__setattr__(self, "labels", _frozen_array(np.array(labels, copy=True)))
        object.__setattr__(self, "num_classes", num_classes)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "lam", _check_lambdas(self.lam, len(widths), "lam"))

    _has_free_features = False
    _has_bias = False
    _lam_features = 0.0

    @property
    def _relu_after(self) -> tuple[bool, ...]:
        return (False,) * (self.num_layers - 1)

    @property
    def _lam_weights(self) -> tuple[float, ...]:
        return self.lam

    @property
    def _fixed_features(self) -> np.ndarray:
        return self.features

    @cached_property
    def targets(self) -> np.ndarray:
        """One-hot Y ∈ {0,1}^{K×N} of ``labels``."""
        return _frozen_array(one_hot_targets(self.labels, self.num_classes))
