"""Runnable examples: ``python -m relucore.examples.NAME --help``."""
