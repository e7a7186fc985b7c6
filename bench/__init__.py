"""engramdb benchmarks: ``python -m bench [name ...]`` (``make bench`` runs them all)."""
