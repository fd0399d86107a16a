"""nn.summary's figures against hand-computed ones, and nn.fuse against the unfused model."""

from __future__ import annotations

import numpy as np
import pytest

from relucore import nn
from relucore.nn.fuse import fuse
from relucore.nn.summary import summary


def tiny(fuse_pairs=True):
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8, 3), fuse=fuse_pairs)


def test_summary_tiny_model_by_hand():
    s = summary(tiny(), (2, 1, 4, 4))
    rows = [(r.layer, r.output_shape, r.params, r.kept_bytes, r.plain_bytes) for r in s.rows]
    assert rows == [
        # conv keeps x (32 float32); plain adds the im2col columns (32 positions x 9 taps)
        ("Conv2d", (2, 2, 4, 4), 2 * 9 + 2, 32 * 4, (32 + 32 * 9) * 4),
        # BN, ReLU and the pool run as one sweep: BN keeps x, the per-channel mean and 1/std, and
        # the pool's byte per output (the window position that won); plain keeps x and x-hat
        ("BatchNorm2d", (2, 2, 4, 4), 4, 64 * 4 + 2 * 2 * 4 + 16, 2 * 64 * 4),
        ("ReLU", (2, 2, 4, 4), 0, 0, 64 * 4),
        # plain keeps x and an int64 index
        ("MaxPool2d", (2, 2, 2, 2), 0, 0, 64 * 4 + 16 * 8),
        ("Flatten", (2, 8), 0, 0, 0),
        ("Linear", (2, 3), 8 * 3 + 3, 16 * 4, 16 * 4),
    ]
    assert s.total_params == 51
    assert s.total_kept_bytes == 128 + 272 + 16 + 64
    assert s.total_plain_bytes == 1280 + 512 + 256 + 384 + 64
    text = str(s)
    assert "BatchNorm2d" in text and f"{s.total_kept_bytes:,}" in text and f"{s.total_plain_bytes:,}" in text


def test_summary_unfused_relu_keeps_a_bit_mask():
    rows = summary(tiny(fuse_pairs=False), (2, 1, 4, 4)).rows
    assert rows[1].kept_bytes == 64 * 4 + 2 * 2 * 4
    assert rows[2].kept_bytes == 64 // 8  # one bit per element


def test_summary_float64_and_model_unchanged():
    model = tiny()
    before = model.state_dict()
    s = summary(model, (2, 1, 4, 4), dtype=np.float64)
    # a byte per pooled output, any dtype (at the batch norm, whose sweep ran the pool)
    assert s.rows[0].kept_bytes == 32 * 8 and s.rows[1].kept_bytes == 64 * 8 + 2 * 2 * 8 + 16
    assert model[0].weight.dtype == np.float32
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_example_cnn_keeps_at_most_0_6_of_plain_numpy():
    from relucore.examples.digits import make_model
    s = summary(make_model(), (64, 1, 8, 8))
    assert s.kept_ratio <= 0.6


def test_summary_errors():
    with pytest.raises(TypeError, match="Sequential"):
        summary(nn.Linear(2, 2), (1, 2))
    with pytest.raises(TypeError, match="float32 or float64"):
        summary(tiny(), (2, 1, 4, 4), dtype=np.int32)
    with pytest.raises(ValueError, match="input_shape"):
        summary(tiny(), 5)
    for bad in ("ab", (2.7, 1, 4, 4)):  # not ints: refused, not truncated
        with pytest.raises(ValueError, match="input_shape must be a tuple of ints"):
            summary(tiny(), bad)
    with pytest.raises(ValueError, match="would take more than"):
        summary(tiny(), (2**40, 1, 2**20, 2**20))


def test_summary_counts_a_nested_sequential_as_its_modules():
    flat = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    nested = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 2))
    a, b = summary(nested, (3, 4)), summary(flat, (3, 4))
    assert a.total_kept_bytes == b.total_kept_bytes > 0
    assert a.total_plain_bytes == b.total_plain_bytes > 0
    assert a.rows[0].kept_bytes == b.rows[0].kept_bytes + b.rows[1].kept_bytes
    assert a.rows[0].output_shape == (3, 8) and a.rows[0].params == 40


def trained_like(model, rng):
    """Give every batch norm non-trivial running statistics and affine parameters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            if m.running_mean is not None:
                m.running_mean[...] = rng.normal(0, 0.5, m.num_features)
                m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[...] = rng.normal(0, 0.3, m.num_features)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fuse_equals_unfused_eval_model(dtype):
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, dtype=dtype), nn.BatchNorm2d(8, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, bias=False, dtype=dtype), nn.BatchNorm2d(8, affine=False, dtype=dtype),
        nn.LeakyReLU(0.1),
        nn.Sequential(nn.Conv2d(8, 4, 1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype)),
        nn.Conv2d(4, 4, 1, dtype=dtype), nn.BatchNorm2d(4, track_running_stats=False, dtype=dtype),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5, dtype=dtype),
    )
    trained_like(model, rng).train()
    x = rng.standard_normal((6, 3, 8, 8)).astype(dtype)
    fused = fuse(model)
    assert model.training and not fused.training
    expected = model.eval()(x)
    got = fused(x)
    assert got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    kinds = [type(m).__name__ for m in fused]
    # three batch norms folded; the one without running statistics stays
    assert kinds.count("BatchNorm2d") == 1 and len(fused) == len(model) - 2
    assert [type(m).__name__ for m in fused[5]] == ["Conv2d"]
    assert type(fused[3]) is nn.Conv2d and fused[3].bias is not None and model[4].bias is None


def test_fuse_rejects_non_sequential():
    with pytest.raises(TypeError, match="Sequential"):
        fuse(nn.Conv2d(1, 1, 1))
