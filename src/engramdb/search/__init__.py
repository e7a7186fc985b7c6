"""Retrieval: safe full-text queries, vector search, rank fusion and explanations."""
