"""ufm: unconstrained-features models, their predicted optima, numerical solvers and collapse metrics.

Notation and formulas follow THEORY.md (features are columns, shape (d, N); labels are integers
0..K-1 of shape (N,)); every computation is in float64.
"""

__version__ = "0.1.0"
