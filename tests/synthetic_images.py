"""Tiny labelled images the training tests learn from in a few CPU steps (imported by tests)."""

import numpy as np

FAST = dict(batch_size=32, tta=0, eval_batch_size=256)  # trainer settings for a few-second CPU run


def stripes(n, size=32, seed=0, noise=40):
    """Class 0: horizontal stripes, class 1: vertical stripes, random phase and period, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    grid = np.arange(size)
    period = rng.integers(3, 6, n)[:, None, None]
    phase = rng.integers(0, 6, n)[:, None, None]
    rows = ((grid[None, :, None] + phase) // period) % 2 * np.ones((1, 1, size))
    cols = ((grid[None, None, :] + phase) // period) % 2 * np.ones((1, size, 1))
    pattern = np.where(y[:, None, None] == 0, rows, cols)
    img = 60 + 120 * pattern[..., None] + rng.normal(0, noise, (n, size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), y
