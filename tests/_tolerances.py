"""One table of sample sizes and tolerances for every Monte-Carlo test.

A sample variance s² of n i.i.d. draws with variance σ² and kurtosis κ has
relative standard error sqrt((κ - 1) / n). Tests allow Z_SCORE of those
errors, so a correct implementation fails about once in 1.7 million runs
(two-sided normal tail at 5σ), while a wrong factor (2×, a missed truncation
correction of 0.88², a fan_in/fan_out mix-up at 784 vs 256) is far outside.
"""

import math

Z_SCORE = 5.0

# Kurtosis E[x⁴]/E[x²]² of the standardized distributions the initializers draw.
KURTOSIS = {
    "normal": 3.0,
    "uniform": 1.8,
    # N(0,1) truncated to ±2: E[x⁴]/E[x²]² for the truncated law.
    "truncated_normal": 2.3655,
}

# Shapes at which every variance formula is checked (fan_in, fan_out).
SHAPES = [(784, 256), (100, 100)]


def variance_rtol(n: int, distribution: str) -> float:
    """Relative tolerance on the sample variance of n draws."""
    return Z_SCORE * math.sqrt((KURTOSIS[distribution] - 1.0) / n)


def mean_atol(n: int, std: float) -> float:
    """Absolute tolerance on the sample mean of n draws with standard deviation std."""
    return Z_SCORE * std / math.sqrt(n)


# Sweep textbook cases. Finite width makes the layer-to-layer variance a random
# walk in log space with steps of relative size about sqrt(2 / width) (for
# Gaussian pre-activations); averaging SWEEP_SEEDS seeds at SWEEP_WIDTH units
# over SWEEP_DEPTH layers leaves a relative error of about
# sqrt(2 * depth / (width * seeds)) ≈ 0.06 for depth 5, 0.14 for depth 30.
SWEEP_WIDTH = 256
SWEEP_SEEDS = 8
SWEEP_BATCH = 256
SWEEP_VAR_RTOL = {5: 0.2, 30: 0.35}  # by depth: ~3 standard errors, plus bias from the mean
