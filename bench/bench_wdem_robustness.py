"""Robustness of the weighted-data EM to its seed on clustered data with heavy clutter.

Scene (``scene``): 3 well-separated clusters (2-D: centres (0, 0), (10, 0), (5, 8.7), std
0.3; 1-D: centres 0, 10, 20, std 0.3), 100 observations each, weights U(0.5, 1), plus 40 %
uniform outliers (200) over the clusters' box widened by 20 on every side, weights
U(0.1, 0.3).  Per seed (data and EM seed both = seed) and per (d, variant, outlier class):

* ``wdem.fit`` with K = 3 (the defaults of init / n_init, or --init / --n-init): largest
  error of the 3 means after optimal matching; "stray" = that error exceeds 1 (a
  component among the outliers);
* ``wdem.select`` over K in 1..6 with MML and BIC: the K chosen.

The markdown table is printed and written to ``bench/results/bench_wdem_robustness.md``.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_wdem_robustness.py [--seeds 20]
      [--first-seed 200] [--init kmeans++] [--n-init 1] [--no-select]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from av_perception.core import wdem  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CENTRES = {1: np.array([[0.0], [10.0], [20.0]]),
           2: np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 8.66]])}


def scene(d, seed, n_per=100, outlier_fraction=0.4, std=0.3, margin=20.0):
    """(X (N, d), w (N,), centres (3, d)): 3 clusters + uniform low-weight outliers."""
    rng = np.random.default_rng(seed)
    cent = CENTRES[d]
    n_in = 3 * n_per
    n_out = int(round(outlier_fraction / (1 - outlier_fraction) * n_in))
    X = np.repeat(cent, n_per, axis=0) + std * rng.normal(size=(n_in, d))
    lo, hi = cent.min(0) - margin, cent.max(0) + margin
    X = np.concatenate([X, rng.uniform(lo, hi, (n_out, d))])
    w = np.concatenate([rng.uniform(0.5, 1.0, n_in), rng.uniform(0.1, 0.3, n_out)])
    return X, w, cent


def worst_error(cent, means):
    C = np.linalg.norm(cent[:, None] - means[None], axis=2)
    r, c = linear_sum_assignment(C)
    return float(C[r, c].max())


def run(seeds, fit_kw, select=True):
    rows = []
    for d in (1, 2):
        for variant in ("wd", "fwd"):
            for outlier in (None, "auto"):
                errs, ks, t_fit = [], {"mml": [], "bic": []}, []
                for s in seeds:
                    X, w, cent = scene(d, s)
                    t0 = time.perf_counter()
                    r = wdem.fit(X, w, 3, variant=variant, outlier_volume=outlier, seed=s,
                                 **fit_kw)
                    t_fit.append(time.perf_counter() - t0)
                    errs.append(worst_error(cent, r.means))
                    if select:
                        for crit in ("mml", "bic"):
                            sel = wdem.select(X, w, 1, 6, criterion=crit, variant=variant,
                                              outlier_volume=outlier, seed=s,
                                              **{k: v for k, v in fit_kw.items()
                                                 if k != "init"})
                            ks[crit].append(sel.n_components)
                errs = np.array(errs)
                rows.append(dict(d=d, variant=variant, outlier=outlier is not None,
                                 median=float(np.median(errs)), worst=float(errs.max()),
                                 stray=int(np.sum(errs > 1.0)), n=len(seeds),
                                 mml=Counter(ks["mml"]), bic=Counter(ks["bic"]),
                                 fit_ms=1e3 * float(np.median(t_fit))))
    return rows


def report(rows, title):
    out = [f"### {title}", "",
           "| d | variant | outlier class | median / worst largest mean error | stray starts "
           "| fit K=3 ms (median) | MML: K chosen (count) | BIC: K chosen (count) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        fmt = lambda c: ", ".join(f"{k}: {v}" for k, v in sorted(c.items())) or "-"  # noqa: E731
        out.append(f"| {r['d']} | {r['variant']} | {'yes' if r['outlier'] else 'no'} | "
                   f"{r['median']:.3f} / {r['worst']:.2f} | {r['stray']} / {r['n']} | "
                   f"{r['fit_ms']:.1f} | {fmt(r['mml'])} | {fmt(r['bic'])} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--no-select", action="store_true")
    ap.add_argument("--init", default=None)
    ap.add_argument("--n-init", type=int, default=None)
    a = ap.parse_args()
    kw = {}
    if a.init:
        kw["init"] = a.init
    if a.n_init:
        kw["n_init"] = a.n_init
    wdem.warm_up()
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    rows = run(seeds, kw, select=not a.no_select)
    text = report(rows, f"seeds {seeds.start}-{seeds.stop - 1}, fit options {kw or 'defaults'}")
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_wdem_robustness.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
