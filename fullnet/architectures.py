"""The networks of the papers: a pyramidal MLP with a linear head, and ResNet20 with an MLP head.

Both end in a :class:`LayerStack`, the network of docs/theory.md §2(e) applied to an input Z_0:

    H_l = W_l Z_{l−1},   Z_l = σ(H_l) for l ≤ L1,   Z_l = H_l for L1 < l ≤ L = L1 + L2,

W_l ∈ R^{p_l×p_{l−1}}, p_L = K, no biases by default. For :class:`PyramidalMLP`, Z_0 = X is the
flattened input; for :class:`ResNet20`, Z_0 is the backbone output (the H₁ of the DUFM-like
experiments, docs/theory.md §6 (B), (C)). ``weight_matrices()`` returns W_1, …, W_L in this order,
and ``layer_features(x)`` returns every H_l and Z_l as columns, shape (p_l, N) (package
convention: features are columns). ``forward(x)`` returns the output in torch's layout (N, K),
the transpose of Z_L.

Activations: ``"relu"`` σ(x) = max(x, 0), and the smooth leaky
σ_γ(x) = γx + (1−γ)(softplus(x) − log 2) of docs/theory.md §2(e), with σ_γ(0) = 0 and
σ_γ'(x) = γ + (1−γ)·sigmoid(x) ∈ (γ, 1) (hypothesis 2 of (A)'s Thm 4.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as functional
from torch import nn

ACTIVATIONS = ("relu", "smooth_leaky")
INITIALIZATIONS = ("lecun", "he", "xavier", "uniform")


class SmoothLeakyActivation(nn.Module):
    """σ_γ(x) = γx + (1−γ)(softplus(x) − log 2), 0 < γ < 1 (docs/theory.md §2(e)).

    σ_γ(0) = 0, σ_γ' = γ + (1−γ)·sigmoid ∈ (γ, 1), ``|σ_γ''|`` ≤ (1−γ)/4.
    """

    def __init__(self, gamma: float = 0.2) -> None:
        super().__init__()
        gamma = float(gamma)
        if not 0.0 < gamma < 1.0:
            raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
        self.gamma = gamma

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.gamma * inputs + (1.0 - self.gamma) * (
            functional.softplus(inputs) - math.log(2.0)
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


def make_activation(name: str, gamma: float = 0.2) -> nn.Module:
    """``"relu"`` → :class:`torch.nn.ReLU`; ``"smooth_leaky"`` → :class:`SmoothLeakyActivation`."""
    if name == "relu":
        return nn.ReLU()
    if name == "smooth_leaky":
        return SmoothLeakyActivation(gamma)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


@dataclass
class LayerFeatures:
    """Per-layer features of a :class:`LayerStack` on N samples, as columns.

    Attributes
    ----------
    inputs : torch.Tensor, shape (p₀, N)
        Z_0 (the flattened input of an MLP, the backbone output of a ResNet).
    pre_activations : list of torch.Tensor
        H_1, …, H_L, H_l = W_l Z_{l−1} of shape (p_l, N).
    post_activations : list of torch.Tensor
        Z_1, …, Z_L; Z_l = σ(H_l) for l ≤ L1, Z_l = H_l (the same tensor) for l > L1.
    nonlinear_depth : int
        L1.
    """

    inputs: torch.Tensor
    pre_activations: list[torch.Tensor]
    post_activations: list[torch.Tensor]
    nonlinear_depth: int

    @property
    def depth(self) -> int:
        """L = L1 + L2, the number of weight matrices."""
        return len(self.pre_activations)

    @property
    def output(self) -> torch.Tensor:
        """Z_L ∈ R^{K×N}."""
        return self.post_activations[-1]

    def detach(self, dtype: torch.dtype | None = None) -> "LayerFeatures":
        """Detached copies (optionally cast) of every feature matrix."""

        def convert(tensor: torch.Tensor) -> torch.Tensor:
            tensor = tensor.detach()
            return tensor.to(dtype) if dtype is not None else tensor

        return LayerFeatures(
            inputs=convert(self.inputs),
            pre_activations=[convert(tensor) for tensor in self.pre_activations],
            post_activations=[convert(tensor) for tensor in self.post_activations],
            nonlinear_depth=self.nonlinear_depth,
        )

    @staticmethod
    def concatenate(parts: Sequence["LayerFeatures"]) -> "LayerFeatures":
        """Join features of consecutive sample chunks along the sample (column) axis."""
        if not parts:
            raise ValueError("parts must not be empty")
        first = parts[0]
        return LayerFeatures(
            inputs=torch.cat([part.inputs for part in parts], dim=1),
            pre_activations=[
                torch.cat([part.pre_activations[index] for part in parts], dim=1)
                for index in range(first.depth)
            ],
            post_activations=[
                torch.cat([part.post_activations[index] for part in parts], dim=1)
                for index in range(first.depth)
            ],
            nonlinear_depth=first.nonlinear_depth,
        )


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_widths(widths: Any, name: str) -> list[int]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"{name} must be a sequence of positive integers, got {widths!r}")
    return [_check_positive_int(width, f"{name}[{index}]") for index, width in enumerate(widths)]


class LayerStack(nn.Module):
    """L1 non-linear layers followed by L2 linear layers (docs/theory.md §2(e)).

    Parameters
    ----------
    input_dim : int
        p₀.
    nonlinear_widths : sequence of int
        p_1, …, p_{L1} (may be empty: a purely linear head).
    linear_widths : sequence of int
        Hidden widths p_{L1+1}, …, p_{L−1} of the linear part; L2 = len + 1, the last linear layer
        maps to K.
    num_classes : int
        K = p_L.
    activation : {"relu", "smooth_leaky"}
    gamma : float
        γ of σ_γ.
    bias : bool
        Add a (trainable, unregularized) bias to every layer; the theory has none.
    """

    def __init__(
        self,
        input_dim: int,
        nonlinear_widths: Sequence[int],
        linear_widths: Sequence[int],
        num_classes: int,
        *,
        activation: str = "relu",
        gamma: float = 0.2,
        bias: bool = False,
    ) -> None:
        super().__init__()
        input_dim = _check_positive_int(input_dim, "input_dim")
        nonlinear = _check_widths(nonlinear_widths, "nonlinear_widths")
        linear = _check_widths(linear_widths, "linear_widths")
        num_classes = _check_positive_int(num_classes, "num_classes")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        self.widths = [input_dim] + nonlinear + linear + [num_classes]
        self.nonlinear_depth = len(nonlinear)
        self.linear_depth = len(linear) + 1
        self.activation_name = activation
        self.activation = make_activation(activation, gamma)
        with torch.random.fork_rng(devices=[]):  # the default draw is overwritten; keep global state
            self.layers = nn.ModuleList(
                nn.Linear(fan_in, fan_out, bias=bias)
                for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:])
            )

    @property
    def depth(self) -> int:
        """L = L1 + L2."""
        return len(self.layers)

    def weight_matrices(self) -> list[torch.Tensor]:
        """[W_1, …, W_L], W_l of shape (p_l, p_{l−1}) (the parameters themselves)."""
        return [layer.weight for layer in self.layers]

    def biases(self) -> list[torch.Tensor]:
        return [layer.bias for layer in self.layers if layer.bias is not None]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Output (N, K) for inputs (N, p₀)."""
        values = inputs
        for index, layer in enumerate(self.layers):
            values = layer(values)
            if index < self.nonlinear_depth:
                values = self.activation(values)
        return values

    def layer_features(self, inputs: torch.Tensor) -> LayerFeatures:
        """Every H_l and Z_l of inputs (N, p₀), as columns (p_l, N); gradients flow through."""
        pre, post = [], []
        values = inputs
        for index, layer in enumerate(self.layers):
            hidden = layer(values)
            values = self.activation(hidden) if index < self.nonlinear_depth else hidden
            pre.append(hidden.T)
            post.append(values.T)
        return LayerFeatures(inputs.T, pre, post, self.nonlinear_depth)


def initialize_linear(
    weight: torch.Tensor,
    scheme: str,
    generator: torch.Generator,
    gain: float = 1.0,
) -> None:
    """Draw a weight matrix W (p_out, p_in) in place.

    ``"lecun"`` N(0, 1/p_in); ``"he"`` N(0, 2/p_in); ``"xavier"`` N(0, 2/(p_in + p_out));
    ``"uniform"`` U(±1/√p_in) (torch's default for ``nn.Linear``); then W ← gain·W.
    """
    fan_out, fan_in = weight.shape
    with torch.no_grad():
        if scheme == "lecun":
            weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
        elif scheme == "he":
            weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
        elif scheme == "xavier":
            weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
        elif scheme == "uniform":
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=generator)
        else:
            raise ValueError(f"init must be one of {INITIALIZATIONS}, got {scheme!r}")
        weight.mul_(gain)


def _initialize_stack(
    stack: LayerStack,
    scheme: str,
    generator: torch.Generator,
    gain: float,
    second_layer_scale: float,
    *,
    backbone_layers: int = 0,
    backbone_scheme: str | None = None,
    backbone_gain: float | None = None,
) -> None:
    """Draw W_1, …, W_L in this order from ``generator``: W_l with ``backbone_scheme`` ×
    ``backbone_gain`` for l ≤ ``backbone_layers`` (defaults: ``scheme``, ``gain``), else ``scheme`` ×
    ``gain``; W_2 also × ``second_layer_scale``; biases zero."""
    for index, layer in enumerate(stack.layers):
        if index < backbone_layers:
            layer_scheme = scheme if backbone_scheme is None else backbone_scheme
            layer_gain = gain if backbone_gain is None else backbone_gain
        else:
            layer_scheme, layer_gain = scheme, gain
        scale = layer_gain * (second_layer_scale if index == 1 else 1.0)
        initialize_linear(layer.weight, layer_scheme, generator, scale)
        if layer.bias is not None:
            with torch.no_grad():
                layer.bias.zero_()


def _linear_widths(linear_depth: int, linear_width: int | None, default: int) -> list[int]:
    linear_depth = _check_positive_int(linear_depth, "linear_depth")
    width = default if linear_width is None else _check_positive_int(linear_width, "linear_width")
    return [width] * (linear_depth - 1)


class StackedNetwork(nn.Module):
    """A network whose measured layers are one :class:`LayerStack`, ``self.stack``, on Z_0.

    Subclasses set ``self.stack`` and define :meth:`stack_input` (Z_0 in torch's layout (N, p₀):
    the flattened input of an MLP, the backbone output of a ResNet) and
    :meth:`backbone_parameters`; the rest (depths, widths [p_0, …, p_L], the weight matrices
    [W_1, …, W_L] in the papers' order, W_l ∈ R^{p_l×p_{l−1}}, the forward pass and the
    per-layer features) is the stack's.
    """

    stack: LayerStack

    @property
    def nonlinear_depth(self) -> int:
        return self.stack.nonlinear_depth

    @property
    def linear_depth(self) -> int:
        return self.stack.linear_depth

    @property
    def depth(self) -> int:
        return self.stack.depth

    @property
    def widths(self) -> list[int]:
        """[p_0, p_1, …, p_L] of the stack (p_0: the input of W_1)."""
        return list(self.stack.widths)

    def weight_matrices(self) -> list[torch.Tensor]:
        """[W_1, …, W_L] of the stack in the papers' order (the parameters themselves)."""
        return self.stack.weight_matrices()

    def backbone_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters before the stack."""
        raise NotImplementedError

    def stack_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """Z_0 in torch's layout (N, p₀)."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Output Z_Lᵀ of shape (N, K)."""
        return self.stack(self.stack_input(inputs))

    def layer_features(self, inputs: torch.Tensor) -> LayerFeatures:
        """Z_0 and every H_l, Z_l as columns (p_l, N) (see :class:`LayerFeatures`)."""
        return self.stack.layer_features(self.stack_input(inputs))


class PyramidalMLP(StackedNetwork):
    """input → wide first layer → non-increasing widths (L1 non-linear layers) → L2 linear layers.

    The network of (A) (docs/theory.md §2(e)): Z_0 = X (the flattened input, p₀ coordinates),
    p₁ possibly ≥ N (hypothesis 1 of Thm 4.4: p₁ ≥ N and p₂ ≥ p₃ ≥ … ≥ p_L = K).

    Parameters
    ----------
    input_dim : int
        p₀ (784 for MNIST).
    num_classes : int
        K.
    nonlinear_widths : sequence of int
        p_1, …, p_{L1} (L1 ≥ 1).
    linear_depth : int
        L2 ≥ 1, the number of linear layers (the last maps to K).
    linear_width : int, optional
        Width of the hidden linear layers (default p_{L1}).
    activation : {"relu", "smooth_leaky"}
    gamma : float
        γ of σ_γ (0 < γ < 1).
    bias : bool
        Biases (unregularized); the theory has none.
    init : {"lecun", "he", "xavier", "uniform"}
        See :func:`initialize_linear`.
    init_gain : float
        Multiplies every weight matrix after drawing.
    second_layer_scale : float
        Extra factor on W_2: a small second layer (e.g. 0.01) with the others large is the
        initialization of Thm 4.4 of (A) (hypothesis 3, docs/theory.md §2(e)).
    backbone_layers : int
        b: W_1, …, W_b (the backbone before a head, e.g. before the feature-penalty layer) are
        drawn with ``backbone_init`` × ``backbone_init_gain`` instead; 0 ≤ b < L. All layers are
        drawn in order from one generator, so ``backbone_layers = 0`` (or a backbone with the
        head's scheme and gain) gives the same weights as before.
    backbone_init : str, optional
        Scheme of W_1, …, W_b (default ``init``).
    backbone_init_gain : float, optional
        Gain of W_1, …, W_b (default ``init_gain``).
    pyramidal : bool
        Require p_2 ≥ p_3 ≥ … ≥ p_L (the first width is free); False accepts any widths.
    seed : int
        Seed of the weight draw (a private ``torch.Generator``; no global random state).
    """

    def __init__(
        self,
        input_dim: int,
        num_classes: int,
        nonlinear_widths: Sequence[int],
        *,
        linear_depth: int = 2,
        linear_width: int | None = None,
        activation: str = "relu",
        gamma: float = 0.2,
        bias: bool = False,
        init: str = "lecun",
        init_gain: float = 1.0,
        second_layer_scale: float = 1.0,
        backbone_layers: int = 0,
        backbone_init: str | None = None,
        backbone_init_gain: float | None = None,
        pyramidal: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        nonlinear = _check_widths(nonlinear_widths, "nonlinear_widths")
        if not nonlinear:
            raise ValueError("nonlinear_widths must hold at least one width (L1 >= 1)")
        linear = _linear_widths(linear_depth, linear_width, nonlinear[-1])
        self.stack = LayerStack(
            input_dim, nonlinear, linear, num_classes,
            activation=activation, gamma=gamma, bias=bias,
        )
        widths = self.stack.widths
        if pyramidal and any(later > earlier for earlier, later in zip(widths[2:-1], widths[3:])):
            raise ValueError(
                f"widths p_2 >= p_3 >= ... >= p_L must not increase (pyramidal topology), got "
                f"{widths[2:]}; pass pyramidal=False to allow them"
            )
        if init not in INITIALIZATIONS:
            raise ValueError(f"init must be one of {INITIALIZATIONS}, got {init!r}")
        for value, name in ((init_gain, "init_gain"), (second_layer_scale, "second_layer_scale")):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if second_layer_scale != 1.0 and self.stack.depth < 2:
            raise ValueError("second_layer_scale needs at least two layers")
        if isinstance(backbone_layers, bool) or not isinstance(backbone_layers, int) or not (
            0 <= backbone_layers < self.stack.depth
        ):
            raise ValueError(
                f"backbone_layers must be an integer in 0..{self.stack.depth - 1} (L = {self.stack.depth}), "
                f"got {backbone_layers!r}"
            )
        if backbone_init is not None and backbone_init not in INITIALIZATIONS:
            raise ValueError(f"backbone_init must be one of {INITIALIZATIONS} or None, got {backbone_init!r}")
        if backbone_init_gain is not None and not (
            isinstance(backbone_init_gain, (int, float)) and not isinstance(backbone_init_gain, bool)
            and math.isfinite(backbone_init_gain) and backbone_init_gain > 0
        ):
            raise ValueError(f"backbone_init_gain must be a finite number > 0 or None, got {backbone_init_gain!r}")
        if backbone_layers == 0 and (backbone_init is not None or backbone_init_gain is not None):
            raise ValueError("backbone_init and backbone_init_gain need backbone_layers >= 1")
        generator = torch.Generator().manual_seed(int(seed))
        _initialize_stack(
            self.stack, init, generator, float(init_gain), float(second_layer_scale),
            backbone_layers=backbone_layers, backbone_scheme=backbone_init,
            backbone_gain=None if backbone_init_gain is None else float(backbone_init_gain),
        )
        self.backbone_layers = backbone_layers
        self.input_dim = int(input_dim)
        self.num_classes = int(num_classes)

    def backbone_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters before the layer stack (none for an MLP)."""
        return []

    def stack_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """Z_0 in torch's layout (N, p₀): the input flattened."""
        if inputs.dim() < 2:
            raise ValueError(f"inputs must have shape (N, ...), got {tuple(inputs.shape)}")
        flat = inputs.reshape(inputs.shape[0], -1)
        if flat.shape[1] != self.input_dim:
            raise ValueError(
                f"inputs must have {self.input_dim} coordinates per sample, got {flat.shape[1]}"
            )
        return flat

    def describe(self) -> dict[str, Any]:
        return {
            "architecture": "mlp",
            "widths": self.widths,
            "nonlinear_depth": self.nonlinear_depth,
            "linear_depth": self.linear_depth,
            "activation": self.stack.activation_name,
            "parameters": sum(parameter.numel() for parameter in self.parameters()),
        }


# --------------------------------------------------------------------------------------------
# ResNet20 (He et al. 2016, CIFAR variant)
# --------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the shortcut, then ReLU.

    Shortcut ``"A"`` (He et al. 2016, CIFAR): identity, or stride-2 subsampling with zero-padded
    channels when the shape changes (no parameters); ``"B"``: a 1×1 convolution and BN.
    """

    def __init__(self, channels_in: int, channels_out: int, stride: int, *, batch_norm: bool,
                 shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(channels_out) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels_out) if batch_norm else nn.Identity()
        self.shortcut_kind = shortcut
        self.pad = channels_out - channels_in
        self.stride = stride
        self.projection: nn.Module | None = None
        if shortcut == "B" and (stride != 1 or channels_in != channels_out):
            self.projection = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                nn.BatchNorm2d(channels_out) if batch_norm else nn.Identity(),
            )

    def shortcut(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            return self.projection(inputs)
        if self.stride == 1 and self.pad == 0:
            return inputs
        subsampled = inputs[:, :, :: self.stride, :: self.stride]
        half = self.pad // 2
        return functional.pad(subsampled, (0, 0, 0, 0, half, self.pad - half))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        values = functional.relu(self.norm1(self.conv1(inputs)))
        values = self.norm2(self.conv2(values))
        return functional.relu(values + self.shortcut(inputs))


class ResNet20Backbone(nn.Module):
    """conv(16) → three stages of three blocks (16, 32, 64 channels; strides 1, 2, 2) → average pool.

    Output (N, 64): the backbone features, Z_0 of the head.
    """

    def __init__(self, input_channels: int = 3, *, batch_norm: bool = True, shortcut: str = "A",
                 blocks_per_stage: int = 3) -> None:
        super().__init__()
        input_channels = _check_positive_int(input_channels, "input_channels")
        blocks_per_stage = _check_positive_int(blocks_per_stage, "blocks_per_stage")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        with torch.random.fork_rng(devices=[]):  # weights are redrawn by ResNet20 with its seed
            self.stem = nn.Conv2d(input_channels, 16, 3, 1, 1, bias=False)
            self.stem_norm = nn.BatchNorm2d(16) if batch_norm else nn.Identity()
            blocks = []
            channels = 16
            for stage, width in enumerate((16, 32, 64)):
                for index in range(blocks_per_stage):
                    stride = 2 if stage > 0 and index == 0 else 1
                    blocks.append(BasicBlock(channels, width, stride, batch_norm=batch_norm,
                                             shortcut=shortcut))
                    channels = width
            self.blocks = nn.Sequential(*blocks)
        self.output_dim = 64

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        values = functional.relu(self.stem_norm(self.stem(inputs)))
        values = self.blocks(values)
        return values.mean(dim=(2, 3))


class ResNet20(StackedNetwork):
    """CIFAR ResNet20 backbone (16/32/64 channels) with an MLP head of chosen depths.

    The head is a :class:`LayerStack` on the 64 backbone features: L1 non-linear layers
    (``head_nonlinear_widths``, may be empty) and L2 = ``linear_depth`` linear layers. E.g. E-A2
    of docs/theory.md §6 uses 3 ReLU + 3 linear head layers, E-C3 a 4-layer head.

    Parameters
    ----------
    num_classes : int
    input_channels : int
        3 for CIFAR-10, 1 for MNIST (E-A5).
    head_nonlinear_widths : sequence of int
    linear_depth : int
    linear_width : int, optional
        Hidden width of the linear head (default: the last non-linear width, or 64).
    activation, gamma, bias
        Of the head, as in :class:`PyramidalMLP`.
    batch_norm : bool
        Batch normalization in the backbone (standard ResNet20); its affine parameters are
        unregularized like biases.
    shortcut : {"A", "B"}
        See :class:`BasicBlock`.
    head_init : str
        Initialization of the head (:func:`initialize_linear`); convolutions use He normal
        (fan_out), BN scale 1 and shift 0.
    seed : int
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        input_channels: int = 3,
        head_nonlinear_widths: Sequence[int] = (64, 64, 64),
        linear_depth: int = 3,
        linear_width: int | None = None,
        activation: str = "relu",
        gamma: float = 0.2,
        bias: bool = False,
        batch_norm: bool = True,
        shortcut: str = "A",
        head_init: str = "lecun",
        init_gain: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.backbone = ResNet20Backbone(input_channels, batch_norm=batch_norm, shortcut=shortcut)
        nonlinear = _check_widths(head_nonlinear_widths, "head_nonlinear_widths")
        default_width = nonlinear[-1] if nonlinear else self.backbone.output_dim
        linear = _linear_widths(linear_depth, linear_width, default_width)
        self.stack = LayerStack(
            self.backbone.output_dim, nonlinear, linear, num_classes,
            activation=activation, gamma=gamma, bias=bias,
        )
        if head_init not in INITIALIZATIONS:
            raise ValueError(f"head_init must be one of {INITIALIZATIONS}, got {head_init!r}")
        generator = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for module in self.backbone.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                            generator=generator)
                elif isinstance(module, nn.BatchNorm2d):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
        _initialize_stack(self.stack, head_init, generator, float(init_gain), 1.0)
        self.input_channels = int(input_channels)
        self.num_classes = int(num_classes)

    def backbone_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.backbone.parameters())

    def stack_input(self, inputs: torch.Tensor) -> torch.Tensor:
        """Z_0 in torch's layout (N, 64): the backbone output for images (N, C, H, W)."""
        if inputs.dim() != 4 or inputs.shape[1] != self.input_channels:
            raise ValueError(
                f"inputs must have shape (N, {self.input_channels}, H, W), got {tuple(inputs.shape)}"
            )
        return self.backbone(inputs)

    def describe(self) -> dict[str, Any]:
        return {
            "architecture": "resnet20",
            "widths": self.widths,
            "nonlinear_depth": self.nonlinear_depth,
            "linear_depth": self.linear_depth,
            "activation": self.stack.activation_name,
            "parameters": sum(parameter.numel() for parameter in self.parameters()),
        }


def compute_layer_features(
    model: nn.Module, inputs: torch.Tensor, *, chunk_size: int | None = None
) -> LayerFeatures:
    """``model.layer_features(inputs)`` computed over chunks of samples, without gradients.

    Parameters
    ----------
    model : PyramidalMLP or ResNet20
    inputs : torch.Tensor, shape (N, ...)
    chunk_size : int, optional
        Samples per forward pass (None: all at once). With batch normalization in training mode,
        chunks change the statistics; call ``model.eval()`` first.
    """
    if chunk_size is not None:
        _check_positive_int(chunk_size, "chunk_size")
    with torch.no_grad():
        if chunk_size is None or chunk_size >= inputs.shape[0]:
            return model.layer_features(inputs).detach()
        parts = [
            model.layer_features(inputs[start : start + chunk_size]).detach()
            for start in range(0, inputs.shape[0], chunk_size)
        ]
    return LayerFeatures.concatenate(parts)


__all__ = [
    "ACTIVATIONS",
    "BasicBlock",
    "INITIALIZATIONS",
    "LayerFeatures",
    "LayerStack",
    "PyramidalMLP",
    "ResNet20",
    "ResNet20Backbone",
    "SmoothLeakyActivation",
    "StackedNetwork",
    "compute_layer_features",
    "initialize_linear",
    "make_activation",
]
