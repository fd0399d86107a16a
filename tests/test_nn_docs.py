"""The examples in relucore.nn's and relucore.optim's docstrings run and print what they show."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import relucore.nn as nn
import relucore.optim as optim
from relucore.optim import lr_scheduler

CLASSES = ([getattr(nn, n) for n in nn.__all__ if isinstance(getattr(nn, n), type)]
           + [getattr(optim, n) for n in optim.__all__ if isinstance(getattr(optim, n), type)]
           + [lr_scheduler.StepLR, lr_scheduler.CosineAnnealingLR])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_examples(cls):
    base = cls is optim.Optimizer  # a base class: its subclasses carry the examples
    assert base or "Example::" in (cls.__doc__ or ""), f"{cls.__name__} has no example"
    tests = doctest.DocTestFinder(recurse=False).find(cls, cls.__name__, globs={"np": np, "nn": nn, "optim": optim})
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report = []
    for t in tests:
        runner.run(t, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0 or base
