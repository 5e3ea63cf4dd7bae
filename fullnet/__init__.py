"""fullnet: real networks trained with weight decay (THEORY.md §2(e), §6), measured with ``ufm``."""
