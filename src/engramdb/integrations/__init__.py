"""Integrations with agent frameworks. Each module imports its framework lazily."""
