"""Runnable examples: ``python -m relucore.examples.digits`` trains a small CNN on 8x8 digits."""
