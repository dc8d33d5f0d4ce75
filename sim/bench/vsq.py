"""``accelgen bench vsq``: what per-vector scaling (VS-Quant) buys, measured with the golden models.

Two measurements, both computed by :mod:`sim.golden.quant` and :mod:`sim.golden.vsq`:

1. **SQNR on synthetic data.** Gaussian and Laplace tensors of 64 channels x 4096 elements (one
   seed of ``numpy.random.default_rng`` each, seeds 0, 1, 2, figures are the mean), 4-bit codes,
   max calibration, quantized per tensor, per channel (along the 4096 elements), per vector of
   V = 16, 32, 64 elements with real-valued scales, and two-level (VS-Quant) with M = 4, 6, 8-bit
   integer per-vector scales and one second-level scale per channel. SQNR =
   ``10 log10(sum x**2 / sum (x - x_hat)**2)`` over the whole tensor. With matplotlib installed
   the table is also drawn as a PNG.

2. **A real model.** A 64-128-10 MLP (ReLU) trained with scikit-learn's ``MLPClassifier``
   (Adam, up to 300 epochs, ``random_state`` = training seed) on the digits set bundled with
   scikit-learn (8 x 8 images scaled to [0, 1]; 75 % train, 25 % = 450 images test, stratified,
   ``random_state=0``). Every
   GEMM of the quantized models runs through the bit-exact integer model: codes and integer
   scales from :func:`sim.golden.quant.quantize_tensor`, the accumulator from
   :func:`sim.golden.vsq.vsq_gemm`, the per-channel scale as a 16-bit fixed-point multiplier with
   FP32 output (:func:`sim.golden.vsq.postprocess`); the bias and ReLU are applied in float after
   it. Reported:
   test accuracy and the SQNR of the logits against the float model. Settings:

   * ``per-channel``: weights per output channel; activations per tensor with a static clip
     calibrated on the float model's training-set activations (the common deployment).
   * ``VSQ``: VS-Quant with V = 16: weights two-level along K with one gamma per output channel;
     activations two-level along K computed on the fly with one gamma per row (image).
   * calibration ``max`` or ``octav`` sets every clip (per channel, per tensor or per vector).
   * W3A3 rows (3-bit codes, run in the 4-bit mode) are extra: they show where
     per-channel scaling breaks down on this small, easy model.

The model is trained five times (seeds 0-4) and the figures are means; ``--quick`` trains once
(seed 0) and evaluates only max calibration. ``sim`` is accepted for the
common bench interface and unused: these figures come from the golden models (the RTL comparison is
part of the hardware work).
"""

import os
import warnings

import numpy as np

from sim.golden import quant as Q
from sim.golden import vsq as S

__all__ = ["run", "format_table", "sqnr_table", "train_digits_mlp", "mlp_configs", "evaluate_mlp",
           "plot_sqnr", "vsq_layer_operands", "layer_output"]

SQNR_SCHEMES = (
    [("per-tensor", "tensor", {})]
    + [("per-channel", "channel", {"channel_axis": 0})]
    + [(f"per-vector V={v}", "vector", {"vector_size": v}) for v in (16, 32, 64)]
    + [(f"two-level V={v} M={m}", "two_level",
        {"vector_size": v, "scale_bits": m, "channel_axis": 0})
       for v in (16, 32, 64) for m in (4, 6, 8)]
)
DISTRIBUTIONS = ("gaussian", "laplace")


def _synthetic(dist, seed, channels, length):
    rng = np.random.default_rng(seed)
    if dist == "gaussian":
        return rng.standard_normal((channels, length))
    return rng.laplace(size=(channels, length))


def sqnr_table(seeds=(0, 1, 2), channels=64, length=4096, bits=4):
    """SQNR (dB, mean over ``seeds``) of every scheme of :data:`SQNR_SCHEMES` on both distributions.

    Returns a list of rows ``{"scheme", "granularity", "vector_size", "scale_bits", "gaussian",
    "laplace"}``.
    """
    rows = []
    data = {(d, s): _synthetic(d, s, channels, length) for d in DISTRIBUTIONS for s in seeds}
    for name, granularity, kw in SQNR_SCHEMES:
        row = {"scheme": name, "granularity": granularity, "vector_size": kw.get("vector_size"),
               "scale_bits": kw.get("scale_bits")}
        for d in DISTRIBUTIONS:
            row[d] = round(float(np.mean([
                Q.sqnr_db(data[d, s], Q.fake_quantize(data[d, s], bits, granularity, **kw))
                for s in seeds])), 3)
        rows.append(row)
    return rows


# -- the digits MLP --------------------------------------------------------------------------------

def train_digits_mlp(max_iter=300, seed=0):
    """Train the 64-128-10 MLP on scikit-learn's bundled digits; a dict of weights and data splits.

    Deterministic: fixed split, ``random_state=seed`` for the initial weights and the batch order;
    BLAS limited to one thread so that sums are
    taken in the same order on every machine.
    """
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(128,), random_state=seed, max_iter=max_iter)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    return {"weights": [np.asarray(w, np.float64) for w in clf.coefs_],
            "biases": [np.asarray(b, np.float64) for b in clf.intercepts_],
            "x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "epochs": int(clf.n_iter_)}


def mlp_forward_float(model, x):
    """Logits of the float model."""
    h = x
    last = len(model["weights"]) - 1
    for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        h = h @ w + b
        if i < last:
            h = np.maximum(h, 0)
    return h


def mlp_configs(include_extra=True):
    """The quantized settings: ``(name, weight bits, activation bits, scheme, M)``."""
    configs = [
        ("W8A8 per-channel", 8, 8, "channel", None),
        ("W4A4 per-channel", 4, 4, "channel", None),
        ("W4A4 VSQ V=16 M=4", 4, 4, "vsq", 4),
        ("W4A4 VSQ V=16 M=6", 4, 4, "vsq", 6),
        ("W4A8 VSQ V=16 M=4", 4, 8, "vsq", 4),
        ("W4A8 VSQ V=16 M=6", 4, 8, "vsq", 6),
    ]
    if include_extra:
        configs += [("W3A3 per-channel", 3, 3, "channel", None),
                    ("W3A3 VSQ V=16 M=4", 3, 3, "vsq", 4)]
    return configs


_MODE = {(8, 8): "int8", (4, 4): "int4", (3, 3): "int4", (8, 4): "w4a8"}
VECTOR_SIZE = 16


def _quantized_layer(h, w, a_bits, w_bits, scheme, m, calibration, static_clip,
                     vector_size=VECTOR_SIZE):
    """One GEMM through the bit-exact model: FP32 ``h @ w`` as the VSQ hardware would give it."""
    mode = _MODE[a_bits, w_bits]
    k = w.shape[0]
    if scheme == "channel":
        qw = Q.quantize_tensor(w, w_bits, "channel", channel_axis=1, calibration=calibration)
        a_scale = static_clip / Q.qmax(a_bits)
        a_codes = Q.quantize(h, a_scale, a_bits)
        acc = S.vsq_gemm(a_codes, qw.codes, np.ones((h.shape[0], 1)), np.ones((1, w.shape[1])),
                         mode=mode, vector_size=k, scale_bits=3)
        gamma = a_scale * qw.scale
    else:
        ops = vsq_layer_operands(h, w, a_bits, w_bits, m, calibration, vector_size)
        acc = S.vsq_gemm(ops["a"], ops["w"], ops["s_qa"], ops["s_qw"], mode=mode,
                         vector_size=vector_size, scale_bits=m)
        gamma = ops["gamma"]
    return layer_output(acc, gamma)


def vsq_layer_operands(h, w, a_bits, w_bits, m, calibration, vector_size=VECTOR_SIZE):
    """The integer operands of one VSQ GEMM ``h @ w``: a dict with ``mode``, the codes ``a`` (M x K)
    and ``w`` (K x N), the M-bit per-vector scales ``s_qa`` (M x K/V) and ``s_qw`` (K/V x N) and the
    second-level scales' product ``gamma`` (M x N). What :func:`_quantized_layer` gives
    :func:`sim.golden.vsq.vsq_gemm`, and what ``sim/tb/gemm_mlp.py`` sends to the engine."""
    qw = Q.quantize_tensor(w, w_bits, "two_level", vector_axis=0, channel_axis=1,
                           vector_size=vector_size, scale_bits=m, calibration=calibration)
    qa = Q.quantize_tensor(h, a_bits, "two_level", vector_axis=1, channel_axis=0,
                           vector_size=vector_size, scale_bits=m, calibration=calibration)
    return {"mode": _MODE[a_bits, w_bits], "a": qa.codes, "w": qw.codes,
            "s_qa": qa.vector_scale, "s_qw": qw.vector_scale, "gamma": qa.gamma * qw.gamma}


def layer_output(acc, gamma):
    """FP32 ``h @ w`` from the integer accumulators: the per-channel scale ``gamma`` as a 16-bit
    fixed-point multiplier, :func:`sim.golden.vsq.postprocess` with FP32 output, as float64."""
    mult, shift = S.fixed_point_multiplier(gamma, mult_bits=16)
    return S.postprocess(acc, mult, shift, output="fp32").astype(np.float64)


def static_activation_clips(model, bits, calibration):
    """Per-tensor clip of every layer's input, from the float model's training-set activations."""
    clips = []
    h = model["x_train"]
    last = len(model["weights"]) - 1
    for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        clips.append(float(Q.clip_values(h, bits, calibration=calibration).item()))
        h = h @ w + b
        if i < last:
            h = np.maximum(h, 0)
    return clips


def mlp_forward_quantized(model, x, a_bits, w_bits, scheme, m, calibration,
                          vector_size=VECTOR_SIZE):
    """Logits of the quantized model, every GEMM through :func:`_quantized_layer` (``vector_size``:
    V of the ``vsq`` scheme)."""
    clips = static_activation_clips(model, a_bits, calibration) if scheme == "channel" else None
    h = x
    last = len(model["weights"]) - 1
    for i, (w, b) in enumerate(zip(model["weights"], model["biases"], strict=True)):
        h = _quantized_layer(h, w, a_bits, w_bits, scheme, m, calibration,
                             clips[i] if clips else None, vector_size) + b
        if i < last:
            h = np.maximum(h, 0)
    return h


def evaluate_mlp(model, calibrations=("max", "octav"), include_extra=True):
    """Accuracy (%) and logit SQNR (dB) of the float model and every :func:`mlp_configs` setting."""
    x, y = model["x_test"], model["y_test"]
    ref = mlp_forward_float(model, x)
    rows = [{"config": "float", "calibration": None,
             "accuracy": round(100 * float(np.mean(ref.argmax(1) == y)), 2), "logit_sqnr_db": None}]
    for cal in calibrations:
        for name, wb, ab, scheme, m in mlp_configs(include_extra):
            logits = mlp_forward_quantized(model, x, ab, wb, scheme, m, cal)
            rows.append({"config": name, "calibration": cal,
                         "accuracy": round(100 * float(np.mean(logits.argmax(1) == y)), 2),
                         "logit_sqnr_db": round(Q.sqnr_db(ref, logits), 2)})
    return rows


# -- plot ------------------------------------------------------------------------------------------

def plot_sqnr(rows, path):
    """Draw the SQNR table as a bar chart in ``path`` (PNG); False if matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(10, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = np.arange(len(rows))
    for j, d in enumerate(DISTRIBUTIONS):
        ax.bar(xs + (j - 0.5) * 0.4, [r[d] for r in rows], width=0.4, label=d.capitalize())
    ax.set_xticks(xs, [r["scheme"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("SQNR (dB)")
    ax.set_title("4-bit quantization SQNR, 64 x 4096, max calibration, mean of seeds 0-2")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return True


# -- the bench -------------------------------------------------------------------------------------

def _aggregate(per_seed):
    """Mean over training seeds of every row of :func:`evaluate_mlp`, with the per-seed values."""
    floats = [rows[0]["accuracy"] for rows in per_seed]
    out = []
    for j, row in enumerate(per_seed[0]):
        accs = [rows[j]["accuracy"] for rows in per_seed]
        sq = [rows[j]["logit_sqnr_db"] for rows in per_seed]
        out.append({
            "config": row["config"], "calibration": row["calibration"],
            "accuracy": round(float(np.mean(accs)), 2), "accuracy_per_seed": accs,
            "vs_float": round(float(np.mean(np.subtract(accs, floats))), 2),
            "logit_sqnr_db": None if sq[0] is None else round(float(np.mean(sq)), 2),
        })
    return out


def run(quick=False, sim=None, out_dir="bench_out"):
    """Both measurements; a JSON-able dict. The PNG goes to ``out_dir/vsq_sqnr.png``.

    The MLP is trained with seeds 0 to 4 (``quick``: seed 0 only) and the figures are means over
    them: on this small model one test image is 0.22 points, and which few images a quantized model
    gets wrong varies from one training run to the next.
    """
    del sim  # golden-model measurements: no simulator
    sqnr = sqnr_table()
    os.makedirs(out_dir, exist_ok=True)
    plot_path = os.path.join(out_dir, "vsq_sqnr.png")
    plot = plot_path if plot_sqnr(sqnr, plot_path) else None
    seeds = (0,) if quick else (0, 1, 2, 3, 4)
    calibrations = ("max",) if quick else ("max", "octav")
    per_seed, epochs = [], []
    for seed in seeds:
        model = train_digits_mlp(seed=seed)
        epochs.append(model["epochs"])
        per_seed.append(evaluate_mlp(model, calibrations, include_extra=not quick))
    return {"block": "vsq", "quick": quick, "sqnr": sqnr, "plot": plot,
            "mlp": {"model": "64-128-10 MLP, digits", "training_seeds": list(seeds),
                    "epochs": epochs, "test_images": int(len(model["y_test"])),
                    "vector_size": VECTOR_SIZE, "results": _aggregate(per_seed)}}


def format_table(result):
    lines = ["SQNR (dB) of 4-bit quantization, 64 channels x 4096 elements, max calibration, "
             "mean of seeds 0-2",
             f"{'scheme':24} {'Gaussian':>9} {'Laplace':>9}"]
    for r in result["sqnr"]:
        lines.append(f"{r['scheme']:24} {r['gaussian']:>9.2f} {r['laplace']:>9.2f}")
    if result["plot"]:
        lines.append(f"plot: {result['plot']}")
    else:
        lines.append("plot: not drawn (matplotlib is not installed; pip install accelgen[bench])")
    mlp = result["mlp"]
    seeds = mlp["training_seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of seeds {seeds[0]}-{seeds[-1]}"
    lines += ["", f"{mlp['model']}, {mlp['test_images']} test images, {seed_text} of training; "
                  "golden integer model",
              "per-channel: per-channel weights, per-tensor static activations; VSQ: two-level "
              f"V={mlp['vector_size']}, weights and activations",
              f"{'config':22} {'calibration':>11} {'accuracy %':>11} {'vs float':>9} "
              f"{'logit SQNR dB':>14}  accuracy per seed"]
    for r in mlp["results"]:
        sq = "" if r["logit_sqnr_db"] is None else f"{r['logit_sqnr_db']:.2f}"
        each = " ".join(f"{a:.2f}" for a in r["accuracy_per_seed"]) if len(seeds) > 1 else ""
        lines.append(f"{r['config']:22} {r['calibration'] or '-':>11} {r['accuracy']:>11.2f} "
                     f"{r['vs_float']:>+9.2f} {sq:>14}  {each}")
    return "\n".join(lines)
