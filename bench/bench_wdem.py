"""Benchmark of the weighted-data EM and of one audio-visual fusion window.

Time per EM iteration (full covariances, all weights 1, no outlier component) as
``wdem.fit`` runs it: the EM part of a fit, ``wdem._run_em`` from a k-means++
start with max_iter = 10 and no convergence test (the loop of 10 M-steps with its
11 E-steps / log-likelihoods, then the final E-step that gives the
responsibilities and the result arrays), divided by 10, for
the numba kernels (one ``em_loop`` call) and for their plain-numpy references
(the same iterations in a Python loop over vectorised numpy), FWD-EM and WD-EM;
and scikit-learn's GaussianMixture per iteration of its ``fit`` loop (its
private ``_e_step`` + ``_m_step``) on the same data.  Ratios come from blocks of
calls measured next to each other (see ``_paired``).  N in 100..100000,
K in {2, 5, 10}, d in {1, 2, 3}; a scaling plot (K = 5, d = 3) goes to
``bench/results/wdem_scaling.png``.  Then the time of one fusion window
(1 s of 15 fps video with 3 people, about 3 points per frame, plus 100 audio
frames per second), warm-started as in streaming, and cold.

Run:  .venv/bin/python bench/bench_wdem.py  [--quick]

BLAS is pinned to one thread (unless OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are
set): at d <= 3 scikit-learn's small matrix products gain nothing from BLAS
threads, and on a 2-core machine the BLAS pool and numba's OpenMP pool
oversubscribe the cores and stall each other for tens of milliseconds.
The markdown report is printed and written to ``bench/results/bench_wdem.md``.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from av_perception.core import wdem  # noqa: E402
from av_perception.core.av_clustering import (  # noqa: E402
    AVClusterer,
    AVClusteringConfig,
    cluster_window,
)
from av_perception.core.geometry import MicGeometry  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _timeit(fn, min_time=0.3, min_reps=3, max_reps=200):
    """Median wall time (s) of fn() over repeats lasting at least ``min_time`` in total."""
    fn()  # warm (compilation, caches)
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time
                                    and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _paired(fa, fb, min_time=1.0, min_pairs=3, block_time=0.05):
    """Time fa and fb in alternating blocks (each block: calls for at least ``block_time``
    seconds, or one call) -> (median time of fa, median time of fb, median over the
    block pairs of the ratio of their medians, t_b / t_a).  This machine's speed drifts
    by up to 2x within a second (a fixed numba loop timed in windows of 0.25 s: 4.3 to
    8.7 ms), so two medians measured one after the other can be off by that much; blocks
    measured next to each other share the drift.  Within a block the calls run back to
    back (a numba call right after a large numpy one is slowed by its cache misses and
    page faults, which is not what is being compared)."""

    def block(fn):
        times = []
        start = time.perf_counter()
        while not times or time.perf_counter() - start < block_time:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return times

    fa()
    fb()
    ta, tb, ratios = [], [], []
    start = time.perf_counter()
    while len(ratios) < min_pairs or time.perf_counter() - start < min_time:
        a, b = block(fa), block(fb)
        ta += a
        tb += b
        ratios.append(statistics.median(b) / statistics.median(a))
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def _repeat(fn, times):
    for _ in range(times):
        fn()


def _data(n, K, d, rng):
    centres = rng.uniform(-5, 5, (K, d))
    X = centres[rng.integers(K, size=n)] + rng.normal(size=(n, d))
    return np.ascontiguousarray(X)


EM_ITERATIONS = 10


def _ours(X, K, use_numba, variant="fwd"):
    """The EM of wdem.fit on X from a k-means++ start (full covariances), exactly
    EM_ITERATIONS M-steps -> function.  The convergence test gets tol = -1 (never met):
    with tol = 0 a well-separated problem reaches an exact fixed point after 1 or 2
    M-steps, and not after the same number in the kernel and the reference."""
    prob = wdem._prepare(X, np.ones(len(X)), variant, "full", None, EM_ITERATIONS, 0.0, 1e-6,
                         use_numba)
    p = wdem._initial_params(prob, K, "kmeans++", None, None, np.random.default_rng(0))

    def run():  # everything wdem.fit does after its initialisation
        return wdem._run_em(prob, p, EM_ITERATIONS, -1.0)

    assert run()[4] == EM_ITERATIONS
    return run


def _sklearn(X, K):
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(K, covariance_type="full", max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)

    def step():
        _lp, log_resp = gm._e_step(X)
        gm._m_step(X, log_resp)

    return step


def bench_em(ns, ks, ds, reference_max_n):
    rows = []
    rng = np.random.default_rng(0)
    for d in ds:
        for K in ks:
            for n in ns:
                X = _data(n, K, d, rng)
                nb_fwd, nb_wd = _ours(X, K, True), _ours(X, K, True, "wd")
                # sklearn's step is one iteration, ours EM_ITERATIONS
                sk = functools.partial(_repeat, _sklearn(X, K), EM_ITERATIONS)
                _, t_sk, q_sk = _paired(nb_fwd, sk)
                r = dict(n=n, K=K, d=d, sklearn=t_sk / EM_ITERATIONS, sklearn_ratio=q_sk)
                for key, fa, variant in (("", nb_fwd, "fwd"), ("_wd", nb_wd, "wd")):
                    if n <= reference_max_n:
                        t_a, t_b, q = _paired(fa, _ours(X, K, False, variant))
                    else:
                        t_a, t_b, q = _timeit(fa), float("nan"), float("nan")
                    r.update({"numba" + key: t_a / EM_ITERATIONS,
                              "numpy" + key: t_b / EM_ITERATIONS, "ratio" + key: q})
                rows.append(r)
                print(f"  N={n:>6} K={K:>2} d={d}: FWD numba {r['numba'] * 1e3:8.3f} ms, "
                      f"numpy {r['numpy'] * 1e3:8.3f} ms ({r['ratio']:5.1f}x); WD numba "
                      f"{r['numba_wd'] * 1e3:8.3f} ms, numpy {r['numpy_wd'] * 1e3:8.3f} ms "
                      f"({r['ratio_wd']:5.1f}x); sklearn {r['sklearn'] * 1e3:8.3f} ms "
                      f"({q_sk:5.1f}x)", file=sys.stderr, flush=True)
    return rows


def _scene(rng, geo, people, speaker, seconds=1.0, t0=0.0):
    pts, ws, covs, stamps = [], [], [], []
    for f in range(int(15 * seconds)):
        for p in people:
            if rng.random() < 0.9:
                z = p[2]
                s = np.array([0.01 * z, 0.01 * z, 0.02 * z * z])
                pts.append(p + rng.normal(0, s))
                ws.append(rng.uniform(0.6, 1.0))
                covs.append(np.diag(s ** 2))
                stamps.append(t0 + f / 15)
    n_a = int(100 * seconds)
    itd = np.where(rng.random(n_a) < 0.7, geo.itd(speaker)[0] + rng.normal(0, 2e-5, n_a),
                   rng.uniform(-4.8e-4, 4.8e-4, n_a))
    wa = rng.uniform(0.3, 1.0, n_a)
    return (np.array(pts), np.array(ws), np.array(covs), np.array(stamps), itd, wa,
            t0 + np.arange(n_a) / 100)


def bench_fusion():
    geo = MicGeometry([-0.075, 0, 0], [0.075, 0, 0])
    people = np.array([[-0.6, 0.0, 1.5], [0.5, -0.1, 2.5], [0.0, 0.1, 3.0]])
    rng = np.random.default_rng(1)
    X, w, C, _, itd, wa, _ = _scene(rng, geo, people, people[0])
    out = {"points": len(X), "itds": len(itd)}
    for use_numba in (True, False):
        tag = "numba" if use_numba else "numpy"
        prev = cluster_window(X, w, itd, wa, geo, visual_covariances=C,
                              use_numba=use_numba).state
        X2, w2, C2, _, itd2, wa2, _ = _scene(rng, geo, people, people[0])
        run = functools.partial(cluster_window, X2, w2, itd2, wa2, geo, use_numba=use_numba)
        out[f"warm_{tag}"] = _timeit(functools.partial(run, visual_covariances=C2,
                                                       previous=prev), min_time=1.0)
        out[f"warm_nocov_{tag}"] = _timeit(functools.partial(run, previous=prev), min_time=1.0)
        out[f"cold_{tag}"] = _timeit(functools.partial(run, visual_covariances=C2),
                                     min_time=1.0)
        out[f"cold_mml_{tag}"] = _timeit(functools.partial(
            run, visual_covariances=C2, config=AVClusteringConfig(birth_search="mml")),
            min_time=1.0)
    # streaming: every window of a 10 s stream (hop 0.25 s), numba path
    av = AVClusterer(AVClusteringConfig(window_length=1.0, hop_length=0.25), geo)
    times, iters = [], []
    for sec in range(10):
        Xs, ws_, Cs, ts, itds, was, tas = _scene(rng, geo, people, people[sec % 3], 1.0, sec)
        for f in range(15):
            t = sec + f / 15
            sel = ts == t
            asel = (tas >= t) & (tas < t + 1 / 15)
            t0 = time.perf_counter()
            ev = av.update(t, Xs[sel], ws_[sel], itds[asel], was[asel],
                           visual_covariances=Cs[sel], itd_stamps=tas[asel])
            dt = time.perf_counter() - t0
            if ev and t >= 1.0:
                times.append(dt)
                iters.append(av.last_result.n_iter)
    out["stream_median"] = statistics.median(times)
    out["stream_p90"] = float(np.percentile(times, 90))
    out["stream_max"] = max(times)
    out["stream_windows"] = len(times)
    out["stream_iters"] = statistics.median(iters)
    return out


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["K"] == 5 and r["d"] == 3]
    n = [r["n"] for r in sel]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("numba", "numba (FWD)"), ("numba_wd", "numba (WD)"),
                       ("numpy", "numpy reference (FWD)"), ("numpy_wd", "numpy reference (WD)"),
                       ("sklearn", "sklearn GaussianMixture")):
        ax.loglog(n, [r[key] * 1e3 for r in sel], "o-", label=label)
    ax.set_xlabel("N observations")
    ax.set_ylabel("ms per EM iteration")
    ax.set_title("Weighted-data EM, K = 5, d = 3, full covariances")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid (smoke test)")
    args = ap.parse_args(argv)
    wdem.warm_up()
    if args.quick:
        ns, ks, ds = [100, 1000], [2, 5], [2, 3]
    else:
        ns, ks, ds = [100, 1000, 10000, 100000], [2, 5, 10], [1, 2, 3]
    import numba

    print(f"numba {numba.__version__}, threads {numba.get_num_threads()}, threading layer "
          "chosen at first parallel call", file=sys.stderr)
    rows = bench_em(ns, ks, ds, reference_max_n=100000)
    if not args.quick:
        for n in (300, 3000, 30000):
            rows += bench_em([n], [5], [3], reference_max_n=100000)
    rows.sort(key=lambda r: (r["d"], r["K"], r["n"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    png = RESULTS / "wdem_scaling.png"
    plot(rows, png)

    lines = []

    def out(text=""):
        print(text, flush=True)
        lines.append(text)

    out(f"numba threading layer: {numba.threading_layer()}, threads: "
        f"{numba.get_num_threads()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    out()
    out(f"### Time per EM iteration (wdem: EM of a fit, {EM_ITERATIONS} M-steps, divided by "
        "them; sklearn: _e_step + _m_step; full covariances; ratios: median over "
        "alternating blocks of calls)")
    out()
    out("| N | K | d | numba FWD (ms) | numpy FWD (ms) | numba WD (ms) | numpy WD (ms) "
        "| sklearn (ms) | numpy / numba FWD | numpy / numba WD | sklearn / numba FWD |")
    out("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out(f"| {r['n']} | {r['K']} | {r['d']} | {r['numba'] * 1e3:.3f} | "
            f"{r['numpy'] * 1e3:.3f} | {r['numba_wd'] * 1e3:.3f} | {r['numpy_wd'] * 1e3:.3f} | "
            f"{r['sklearn'] * 1e3:.3f} | {r['ratio']:.1f}x | "
            f"{r['ratio_wd']:.1f}x | {r['sklearn_ratio']:.1f}x |")
    big = [r for r in rows if r["n"] >= 1000]
    out()
    for label, key, target in (("numpy/numba FWD", "ratio", 20),
                               ("numpy/numba WD", "ratio_wd", 20),
                               ("sklearn/numba FWD", "sklearn_ratio", 1)):
        ratios = [(r[key], r) for r in big]
        worst = min(ratios, key=lambda t: t[0])
        under = [f"N={r['n']} K={r['K']} d={r['d']} {q:.1f}x" for q, r in ratios if q < target]
        out(f"N >= 1000, {label}: median {statistics.median(q for q, _ in ratios):.1f}x, "
            f"worst {worst[0]:.1f}x (N={worst[1]['n']} K={worst[1]['K']} d={worst[1]['d']}); "
            f"{len(under)} of {len(ratios)} under {target}x" + (": " + ", ".join(under) if under
                                                          else ""))
    out(f"plot: {png}")

    f = bench_fusion()
    out()
    out(f"### One fusion window ({f['points']} visual points, {f['itds']} ITDs)")
    out()
    out("| case | numba (ms) | numpy reference (ms) |")
    out("|---|---:|---:|")
    for key, label in (("warm", "warm start, per-point covariances"),
                       ("warm_nocov", "warm start, no covariances"),
                       ("cold", "cold start (births: dense cores + one WD-EM, default)"),
                       ("cold_mml", "cold start (births: wdem.select, MML search)")):
        out(f"| {label} | {f[key + '_numba'] * 1e3:.2f} | {f[key + '_numpy'] * 1e3:.2f} |")
    out()
    out(f"streaming AVClusterer.update (10 s, hop 0.25 s, {f['stream_windows']} windows after "
        f"the first second): median {f['stream_median'] * 1e3:.2f} ms, p90 "
        f"{f['stream_p90'] * 1e3:.2f} ms, max {f['stream_max'] * 1e3:.2f} ms, median EM "
        f"iterations {f['stream_iters']}")
    (RESULTS / "bench_wdem.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
