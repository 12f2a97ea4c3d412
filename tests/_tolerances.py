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


# Isometry (tests/test_isometry.py): Jacobian spectra of square MLPs at
# ISO_WIDTH units, ISO_SEEDS networks of one input each. The statistic is the
# normalized variance nu = Var(s²) / mean(s²)² of one network's squared singular
# values, whose large-width limit at criticality is L (mu2/mu1² - 1 - s1)
# (Pennington et al. 2017): L for linear Gaussian and ReLU orthogonal, 2L for
# ReLU Gaussian, 0.13 for the near-critical orthogonal tanh net at L = 32. Single
# networks scatter by about 25% around it at width 128, and finite width (L/N up
# to 1/4) biases it by up to about 20%, so seed averages are held to ISO_NU_RTOL.
ISO_WIDTH = 128
ISO_SEEDS = 4
ISO_NU_RTOL = 0.4

# jaxinit.data (tests/test_data.py): synthetic inputs, checked with variance_rtol
# and mean_atol above. make_circles's noise is measured on DATA_CIRCLES_N points
# (2 coordinates each: variance rtol 5·sqrt(2/4000) ≈ 0.11, so noise std to ~6%);
# gaussian's moments on DATA_GAUSSIAN_SHAPE draws (variance rtol ≈ 0.055).
DATA_CIRCLES_N = 2000
DATA_GAUSSIAN_SHAPE = (256, 64)


# Training (tests/test_train.py). Not Monte Carlo: the same model trained alone
# or vmapped with others runs the same arithmetic, but XLA may pick other matmul
# kernels for another batch of models, which changes the last bits; 20 SGD steps
# of a 16-unit MLP amplify that to about 1e-6 relative at most.
TRAIN_RTOL = 1e-5
TRAIN_ATOL = 1e-6


# LSUV (tests/test_lsuv.py): Var(z_l) of a layer fitted on one batch, measured
# on an independent batch of LSUV_BATCH rows. A variance over B rows × n units
# has a relative standard error of at most sqrt(2 / B) = 0.044 at B = 1024 (the
# worst case, all units perfectly correlated; about sqrt(2 / (B n)) when they
# are independent). The fitted scale and the new estimate carry one error each,
# sqrt(2) · 0.044 = 0.063 together, so 0.2 is over 3 worst-case standard errors.
LSUV_BATCH = 1024
LSUV_OTHER_BATCH_ATOL = 0.2


# Mean-field theory (tests/test_theory.py). At finite width each layer multiplies
# the empirical pre-activation variance by a random factor of relative spread
# about sqrt(2 / width): a random walk in log-variance (exactly so for relu at
# criticality; smaller where a fixed point attracts, e.g. tanh). After layer l
# (0-based) one network is off by about sqrt(2 (l + 1) / width), the mean of
# THEORY_SEEDS networks by that over sqrt(seeds); Z_SCORE of those are allowed.
# This is an estimate, not a bound. Measured at width 512 (64 nets, depth 8, batch
# 64): relu's spread is 0.011 at layer 0, 0.13 at layer 5 and 0.20 at layer 7
# (estimate: 0.06, 0.15, 0.18), tanh's 0.012 and 0.04; the mean deviation is
# under 0.014 except relu's last layer (0.04, within its spread). The test stops
# at layer 5, where Z_SCORE estimates are still 6 measured standard errors.
# A wrong σ_w² (2x: 2^l) or a lost σ_b² (tanh q* 0.42 -> 0.29) is far outside.
THEORY_WIDTH = 512
THEORY_SEEDS = 16
THEORY_BATCH = 16


def theory_var_rtol(layer: int, width: int = THEORY_WIDTH, seeds: int = THEORY_SEEDS) -> float:
    """Relative tolerance on the seed mean of layer ``layer``'s variance."""
    return Z_SCORE * math.sqrt(2 * (layer + 1) / (width * seeds))


# Quadrature against a dense float64 reference (2000 Gauss–Legendre panels):
# the rules work in float32, whose rounding over ~100 weighted terms is ~1e-6.
THEORY_QUAD_RTOL = 2e-5
THEORY_QUAD_ATOL = 1e-6
# The same at large variance (q up to theory's Q_MAX = 1e6) and c -> 1, against float64
# adaptive quadrature (scipy.integrate.quad, tolerance 1e-12) or the erf closed form.
# Measured worst case over 8 activations, q in [0.05, 1e6], c in [-0.6, 0.999]: 1.5e-6;
# the bound, 1e-5, leaves that ~6x room and is at least 100x below the error at these
# points of the same panels without the graded tails (1e-3 to 1e-2), which it catches.
THEORY_LARGE_Q_RTOL = 1e-5
# Near the edge of chaos, χ_c - 1 in float32 against the same computation in float64
# (jax.enable_x64): χ₁ = σ_w² E[φ'²] is a float32 sum of ~200 weighted terms, good to a
# few ulps of 1, and q* (tol 1e-5) moves χ₁ by χ₁'·δq. Measured at 1.001, 1.0001 and
# 1.00001 times tanh's critical σ_w² (σ_b² = 0.05): 1.1e-6, 1.2e-6, 3e-7. 4e-6 (~32 ulps of
# 1) leaves 3x room and is 10x below the error of χ_c computed in c rather than ε = 1 - c
# (4.6e-5 at 1.0001, enough to call a chaotic point critical), which it catches.
THEORY_CHI_EXCESS_ATOL = 4e-6


# Engine equivalence. The sweep shares each family's first-layer product across its
# inits (z₁ = a·(xZ) + b·(x1) instead of x(aZ + b)) and batches every init of the grid
# into one matmul, so a combination's last bits can depend on which inits are beside
# it. Each float32 dot of K terms is correctly rounded up to ~sqrt(K)·eps relative
# (eps = 2⁻²⁴ ≈ 6e-8; K ≤ 100 here, so ~6e-7); through L ≤ 5 layers and the
# statistics' own sums that stays below ~1e-5 relative. ENGINE_RTOL allows 10× that;
# an actual mistake (a wrong scale, family or key) moves statistics by O(1).
ENGINE_RTOL = 1e-4
ENGINE_ATOL = 1e-7  # for statistics that are near zero (means of odd activations)
# Histogram bins are computed arithmetically in float32; a value within this many
# ulps of an interior edge may land in the neighbouring bin (np.histogram compares
# with the edge itself). (h - lo)·bins/(hi - lo) has at most 2 roundings (≤ 1 ulp of
# the index each), so 4 ulps of the value is a safe bound.
HIST_EDGE_ULPS = 4
# Two programs that differ in the last bits (another grid beside a combination) can move
# a value that lies within HIST_EDGE_ULPS ulps of an interior edge into the neighbouring
# bin. For values of density p ≤ 1 per unit near edges of size ~1, the chance that one
# lies that close to one of `bins` ≤ 30 edges is about bins · 2 · 4 · 2⁻²³ ≈ 3e-5; a
# moved value changes the L1 distance of the counts by 2. ENGINE_HIST_L1 allows 1e-3 of
# the values (30× that), and a real mistake moves most of them.
ENGINE_HIST_L1 = 1e-3


# Infinite-width kernels (tests/test_theory_kernels.py) against finite networks of width
# KERNEL_MC_WIDTH, in units of sqrt(K(x,x) K(x',x')) (the kernels' own scale). NNGP: each
# layer's empirical kernel (1/width) Σ_units φ(z)φ(z') averages `width` terms of variance
# <= E[φ(z)²φ(z')²] <= κ E[φ(z)²] E[φ(z')²] (Cauchy–Schwarz; κ = E[φ⁴]/E[φ²]², 3 for the
# Gaussian first and last layers, 6 for relu, < 3 for tanh), and the kernel map carries it
# forward with gain about 1 near criticality; so over `depth` layers and `seeds` networks
# the std is <= sqrt(κ·depth / (width·seeds)) ≈ 0.033 at depth 3, width 1024, 16 seeds
# (measured: 0.029 for relu, 0.015 for tanh). The finite-width bias is O(1/width) ≈ 1e-3.
# NTK (one output): Hanin & Nica 2019 (https://arxiv.org/abs/1909.05989) find
# E[Θ̂²]/E[Θ̂]² ≈ exp(5·depth/width) for relu, a relative variance of 5·depth/width, so the
# seed mean's std is sqrt(5·depth/(width·seeds)) ≈ 0.043 at 8 seeds (measured: 0.032 for
# relu, 0.015 for tanh).
KERNEL_MC_WIDTH = 1024
KERNEL_MC_SEEDS = 16
KERNEL_NTK_SEEDS = 8
KERNEL_KURTOSIS = 6.0  # relu's E[φ⁴]/E[φ²]², the largest among the activations tested
KERNEL_NTK_VAR_FACTOR = 5.0  # Hanin & Nica's exp(5 β), β = depth / width


def kernel_nngp_atol(
    depth: int, width: int = KERNEL_MC_WIDTH, seeds: int = KERNEL_MC_SEEDS
) -> float:
    """Tolerance on the seed mean of the empirical NNGP, in units of sqrt(K(x,x)K(x',x'))."""
    return Z_SCORE * math.sqrt(KERNEL_KURTOSIS * depth / (width * seeds))


def kernel_ntk_atol(
    depth: int, width: int = KERNEL_MC_WIDTH, seeds: int = KERNEL_NTK_SEEDS
) -> float:
    """Tolerance on the seed mean of the empirical NTK, in units of sqrt(Θ(x,x)Θ(x',x'))."""
    return Z_SCORE * math.sqrt(KERNEL_NTK_VAR_FACTOR * depth / (width * seeds))


# Layouts (tests/test_conv_initializers.py): he_normal(convention="torch",
# layout="flax") on LAYOUT_SHAPE = (784, 256), n = 200,704 normal draws, has
# sample-variance rtol variance_rtol(n, "normal") = 5·sqrt(2/n) ≈ 0.016 around
# 2/784; the trap's 2/256 is 3x that, hundreds of tolerances away. Against
# torch's own kaiming_normal_ sample (independent, the same n) the difference of
# two sample variances has relative standard error sqrt(2)·sqrt(2/n), so
# two_sample_variance_rtol allows Z_SCORE of those (≈ 0.022).
LAYOUT_SHAPE = (784, 256)


def two_sample_variance_rtol(n: int, distribution: str) -> float:
    """Relative tolerance on the difference of two independent n-draw sample variances."""
    return math.sqrt(2.0) * variance_rtol(n, distribution)


# q* of tanh just above its σ_b² = 0 edge (σ_w² = 1 + δ): from E[tanh²(√q z)] = q - 2q² + O(q³),
# q* = δ / (2 (1 + δ)) up to O(q*) relative (1e-4 at δ = 1e-4). float32 pins a fixed point
# with V' = 1 - O(δ) only to about eps / (1 - V') ≈ 6e-8 / 1e-4 = 6e-4 relative; 3× that.
THEORY_NEAR_CRITICAL_RTOL = 2e-3

# The coord check on synthetic data (tests/test_mup.py): 4 hidden ReLU layers of widths 32
# and 256 (the slope between the two: 32, 64, 128, 256 cost twice the compilation for the
# same reading), Adam at 1e-3, 20 steps, 8 seeds averaged. Measured on the seed sets 0-7,
# 8-15, 16-23 (2026-12-07): the standard parametrization's output slope 0.604, 0.731, 0.726
# (mean 0.687, sd 0.072); under μP (zero output init) the largest |slope| of any layer 0.152,
# 0.137, 0.101 (mean 0.130, sd 0.026). COORD_SLOPE_SPLIT lies 8 sd above μP's mean and 4.7 sd
# below the standard output's. (With the four widths: 0.619, 0.729, 0.742 and 0.115, 0.127,
# 0.096.)
COORD_SLOPE_SPLIT = 0.35

# optax.inject_hyperparams holds Adam's b2 as a float32 array: 1 - float32(0.999) is off
# by 1.3e-5 relative, so the first update (∝ 1/√(1 - b2)) differs from plain optax.adam's
# by 6.4e-6 relative. An injected rate is compared to the plain optimizer within this.
INJECTED_RTOL = 2e-5


# Stored torch references (tests/references/torch_init.json, tests/_references.py).
# A scale (std or uniform bound) is read off torch's float32 draw by least squares against
# the unit draw of the same seed: torch scales in float32 (2⁻²⁴ ≈ 6e-8 relative), which
# leaves it within 4.9e-8 of the float64 formula (measured on every stored case; jaxinit's
# float32 coefficient is within an ulp of it too). TORCH_SCALE_RTOL allows 20× that and is
# still 50× below the smallest real slip, leaky_relu's default slope 0.01 taken as 0
# (gain √(2/1.0001) against √2: 5e-5 relative).
TORCH_SCALE_RTOL = 1e-6
# Singular values of a float32 (semi-)orthogonal matrix of up to 300 rows: QR leaves them
# within a few ulps · √rows of the gain (2⁻²⁴·√300 ≈ 1e-6); measured up to 4.3e-7 for torch's
# orthogonal_ and 3.5e-7 for jaxinit's. 1e-5 leaves 20× room; flattening the kernel along
# other axes than the ones orthogonalized spreads them by O(1).
ORTHOGONAL_SV_RTOL = 1e-5


def two_sample_kurtosis_atol(n: int) -> float:
    """Tolerance on the difference of the kurtoses E[(x-m)⁴]/Var² of two independent n-draw
    normal samples: each has standard error sqrt(24/n), so their difference sqrt(48/n)
    (0.077 at Z_SCORE for n = 200,704). The normal truncated at ±2σ has kurtosis 2.37, the
    uniform 1.8: a truncated draw against torch's untruncated one is 8 tolerances off."""
    return Z_SCORE * math.sqrt(48.0 / n)


# The critical orthogonal tanh network (tests/test_hostile_inputs.py): σ_w², σ_b² on the
# critical line (χ₁ = 1) with fixed point q* = ISO_CRITICAL_Q, depth ISO_CRITICAL_DEPTH, width
# ISO_WIDTH. Pennington et al. 2017: the eigenvalues λ = s² of JJᵀ have mean χ₁^L = 1 and
# variance L (μ₂/μ₁² - 1) = 1.10 at N → ∞. One network's mean λ over ISO_CRITICAL_INPUTS inputs
# scatters between networks by a standard deviation measured at 0.055 to 0.073 on five sets of
# 8 to 16 networks (2026-12; the estimate sqrt(L (μ₂/μ₁² - 1)/N) = 0.093 per input ignores the
# finite-width fluctuation of q_l and the weights the inputs share); ISO_CRITICAL_NET_SD bounds
# it. The mean over ISO_CRITICAL_SEEDS networks is held to Z_SCORE of its standard error, 0.14.
# Inputs of variance q* instead of (q* - σ_b²)/σ_w² (the old docstring's advice) give 0.78:
# 0.22 below 1, 8 standard errors.
ISO_CRITICAL_Q = 0.25
ISO_CRITICAL_DEPTH = 8
ISO_CRITICAL_INPUTS = 4
ISO_CRITICAL_SEEDS = 8
ISO_CRITICAL_NET_SD = 0.08
ISO_CRITICAL_MEAN_ATOL = Z_SCORE * ISO_CRITICAL_NET_SD / math.sqrt(ISO_CRITICAL_SEEDS)

# Model sweeps (tests/test_sweeping_models.py): the compiled pass against an eager per-seed loop
# over the same keys. The weights are bitwise the same (the same bits, a·Z + b); the forward
# differs only in how XLA orders the float32 sums of each dot, convolution, softmax and norm
# (K ≤ 288 terms: ~sqrt(K)·eps ≈ 1e-6 relative each), over ≤ 8 captured layers and the
# statistics' own sums: below ~1e-5. MODEL_RTOL allows 10× that; a wrong fan (×0.5 in std for
# an attention kernel), key or family moves a variance by O(1).
MODEL_RTOL = 1e-4
MODEL_ATOL = 1e-6  # for means near zero, in units of the layer's std

# Activation transforms (tests/test_transforms.py) against dks 0.1.2's stored parameters. dks
# solves with scipy's hybr (xtol 1.49e-8, relative) after a bisection of its network target to
# 1e-8 in value, on an order-10⁵ Gauss–Legendre rule over [-10, 10]; jaxinit by Newton in
# float64 to residuals below 1e-12 on panels cut at the kinks. For smooth φ (and a leaky ReLU,
# whose kink sits at the rule's centre, where its error cancels) the two agree to 1.2e-8
# (measured, 2026-12); DKS_PARAM_RTOL allows ~100x that. A wrong equation (a target off by
# 1/L, Q'(1) instead of C'(1)) moves the parameters by 1e-3 or more.
DKS_PARAM_RTOL = 1e-6
DKS_PARAM_ATOL = 1e-9  # for shifts that are 0 (a leaky ReLU's β)
# SELU's φ' jumps at 0, where dks's uncut rule does not split: its error is O(h) there,
# (jump of φ'²) × (density at the kink) × h/2 ≈ 2 × 0.35 × 1e-4 ≈ 6e-5 in C'(1) (measured
# 6.1e-5 at jaxinit's solution), which moves its parameters by up to 1e-2 relative (TAT, L =
# 20; measured 1.0e-2). The SELU parameters are held to the equations instead, by an
# independent numpy rule split at the kink (EQUATION_ATOL), and dks's must miss them by more.
DKS_SELU_RTOL = 2e-2
DKS_EQUATION_ATOL = 1e-8

# The zoo's ResNet against its mean field (tests/test_theory_residual.py): each layer's seed
# mean is held to Z_SCORE standard errors of that mean, taken from the seeds' own spread, plus
# a finite-width bias: at width 128 the stream's q_{l+1} - q_l has corrections O(1/width) per
# block (the LayerNorm's division by a sample variance, E[1/s²] > 1/E[s²], and the branch's
# own fluctuation), measured at most 2.4% over four blocks. 5% leaves twice that; an α for α²
# (25 to 50% at α = 0.5) or a missing fan factor is far outside.
RESIDUAL_BIAS_RTOL = 0.05

# theory.predict of the zoo CNN against its sweep (tests/test_conv_variance.py): seed means held
# to Z_SCORE standard errors from the seeds' own spread, plus a bias: relu's variance map is
# linear, so the second moment has none at any width (conv_variance's docstring); the sweep's
# pre_var is centred on the entries' sample mean, whose square is ~q / N with N >= channels ×
# images = 512 effective entries: <= 0.2%. 1% leaves 5× that; a wrong fan (9 for 9·C), the
# delta first layer's C_in/C_out (3/64) or a lost border (SAME: 0.7× by layer 4) is far outside.
CNN_PREDICT_BIAS_RTOL = 0.01

# CNN kernels against neural-tangents (tests/test_conv_kernels.py): both compute in float32;
# each layer sums |F| = 9 shifted terms and n (HW)² pair expectations (closed forms for relu,
# leaky relu and erf; jaxinit's quadrature for gelu against neural-tangents' closed form, ~2e-6
# relative), over up to 3 layers and a mean over (HW)² = 256 position pairs: a few ulps each,
# measured at most 2e-6 relative (2026-12). The bound, 1e-4, leaves ~50x; a wrong
# padding (zeros for wrapped positions) or filter offset moves the kernels by 1e-2 or more.
NT_KERNEL_RTOL = 1e-4
NT_KERNEL_ATOL = 1e-6

# The empirical NTK against the infinite-width one (tests/test_empirical_ntk.py): its entries
# fluctuate with relative sd of order sqrt(depth / width) (Hanin & Nica 2019), so the relative
# Frobenius distance, averaged over EMPIRICAL_SEEDS networks, falls like 1/sqrt(width):
# measured (2026-12, relu MLP of 3 Dense layers, 6 inputs) 0.30 at width 64, 0.06 at 1024, a
# 4.9x fall for 4x predicted; and 0.10 for the zoo's CNN at 256 channels (0.02 to 0.18 by
# seed). Held to: a fall of at least EMPIRICAL_FALL (16x the width: 4 predicted) and the
# distances below EMPIRICAL_MLP_DIST and EMPIRICAL_CNN_DIST, ~2.5x the measured means. A wrong
# fan (a CNN kernel's C for 9C) or a missed parameter moves the kernel by O(1).
EMPIRICAL_SEEDS = 4
EMPIRICAL_FALL = 2.5
EMPIRICAL_MLP_DIST = 0.15
EMPIRICAL_CNN_DIST = 0.3

# The Transformer's coord check (tests/test_train_models.py, sweeps/coord_check.py's
# make_grid(model="transformer")): MNIST rows as tokens, widths 16 and 64, Adam at 1e-2, 10
# steps, 2 seeds averaged; the largest slope among the blocks', attention's and MLPs' outputs.
# Measured on three disjoint pairs of seeds (2026-12-07): standard 0.815, 0.843, 0.881 (mean
# 0.846, sd 0.033); μP's largest |slope| 0.230, 0.199, 0.086 (mean 0.172, sd 0.076). The split
# lies 4.3 sd above μP's mean and 10 sd below the standard one's. (Widths 16, 32, 64 give the
# same slopes: a least-squares line through equally spaced log-widths has the end points'
# slope; the middle width would cost a third more compilation and tell nothing.)
TRANSFORMER_COORD_SLOPE_SPLIT = 0.5
