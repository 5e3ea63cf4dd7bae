"""proofs_checks: every statement of docs/theory.md §5, checked numerically on random instances."""
