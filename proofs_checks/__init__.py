"""proofs_checks: every statement of THEORY.md §5, checked numerically on random instances."""
