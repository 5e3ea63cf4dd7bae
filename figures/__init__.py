"""figures: one module per figure; ``python -m figures NAME|all [--quick]``."""
