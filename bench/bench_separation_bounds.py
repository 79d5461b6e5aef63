"""Where the separation's gap to the ideal ratio mask comes from: oracle bounds.

The scenes, the voice stage and the score are those of ``bench_separation.py`` (double talk,
oracle tracks, SI-SDR gain at the left microphone).  Per talker:

* ``voice``: the voice stage with its defaults;
* ``IRM``, ``IBM``: the ideal ratio / binary masks (the true images) through the same STFT
  and overlap-add -- the mask->signal step's own bound;
* ``acc <1.1k / 1.1-3k / >3k``: how often the stage's mask (its posterior + its share of
  the outlier class) is on the right side of 0.5, weighted by the bins' energy, against
  the true dominance |S_k|^2 > |S_other|^2, per band (0.5: chance);
* ``oracle IPD``: the best mask any per-bin IPD model can give -- per bin frequency, the
  IPD histograms (24 bins) of the bins each talker dominates, from the truth of the same
  scene, turned into a posterior (Bayes with the true shares);
* ``MWF 1`` / ``MWF 4``: the two-channel Wiener filter to the left microphone with the
  true statistics of the whole scene, over the current frame / the current and 3 past
  frames (multi-frame: the reverberation's correlation across frames).

Nothing here is tuned.  Run:  PYTHONPATH=. .venv/bin/python bench/bench_separation_bounds.py
[--seeds 403 404 405 406 407] [--speech synthetic recorded]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_separation as BS  # noqa: E402

from av_perception.core.audio import BinauralFrontEnd  # noqa: E402
from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig  # noqa: E402
from av_perception.core.separation import (  # noqa: E402
    finish_overlap_add,
    overlap_add,
    voice_mask,
)
from av_perception.core.tf_masks import VoiceConfig, cluster_window  # noqa: E402
from av_perception.io.heads import load_head_model  # noqa: E402
from av_perception.pipeline.voices import VoiceSeparator  # noqa: E402
from av_perception.sim.audio import render_audio  # noqa: E402

BANDS = ((100.0, 1100.0), (1100.0, 3000.0), (3000.0, 8000.0))


def _stack(x, n_taps):
    """(F, C, B) -> (F, C n_taps, B): the current and the n_taps - 1 previous frames."""
    out = [x]
    for lag in range(1, n_taps):
        s = np.zeros_like(x)
        s[lag:] = x[:-lag]
        out.append(s)
    return np.concatenate(out, axis=1)


def oracle_mwf(spec, target_left, n_taps):
    """Multichannel Wiener filter with the true (whole-scene) statistics, (F, B)."""
    x = _stack(spec, n_taps)
    phi = np.einsum("fib,fjb->bij", x, np.conj(x))
    r = np.einsum("fib,fb->bi", x, np.conj(target_left))
    n = phi.shape[1]
    tr = np.real(np.trace(phi, axis1=1, axis2=2))[:, None, None]
    w = np.linalg.solve(phi + 1e-4 * tr * np.eye(n) / n, r[:, :, None])[:, :, 0]
    return np.einsum("bc,fcb->fb", np.conj(w), x)


def oracle_ipd_mask(ipd, dominant, n_hist=24):
    """Posterior of the dominant class from per-frequency IPD histograms of the truth."""
    q = np.clip(((ipd + np.pi) / (2 * np.pi) * n_hist).astype(int), 0, n_hist - 1)
    post = np.zeros(ipd.shape)
    for b in range(ipd.shape[1]):
        d = dominant[:, b]
        h1 = np.bincount(q[d, b], minlength=n_hist) + 1.0
        h0 = np.bincount(q[~d, b], minlength=n_hist) + 1.0
        p1 = h1[q[:, b]] / h1.sum() * d.mean()
        p0 = h0[q[:, b]] / h0.sum() * (1.0 - d.mean())
        post[:, b] = p1 / (p1 + p0)
    return post


def run_scene(seed, speech):
    scene = BS.make_bench_scene(seed, "double", speech)
    audio = render_audio(scene, keep_images=True)
    acfg = AudioFrontEndConfig()
    mics = load_head_model(MicArrayConfig(), acfg)
    mix = audio.samples.astype(np.float64)
    n, fs = len(mix), audio.rate
    fe = BinauralFrontEnd(acfg, mics, keep_spectra=True)
    feats = fe.process(mix, fs, 0.0)
    spec = feats.spec
    images = {k: BinauralFrontEnd(acfg, mics, keep_spectra=True).process(
        v.astype(np.float64), fs, 0.0).spec for k, v in audio.images.items()}
    starts = np.round(feats.stamp * fs - (acfg.frame_length - 1) / 2).astype(int)

    def synth(y):
        return finish_overlap_add(*overlap_add(y, starts, n, fe.window))

    pos = np.array([p.trajectory().position([0.0])[0] + np.asarray(scene.mouth_offset)
                    for p in scene.people])
    out = BS._output(np.array([p.id for p in scene.people]), pos)
    voices = VoiceSeparator(fe, fe.geometry).run(feats, [out], 0.0, n).voices
    # the stage's masks, window by window (the same clustering as the stage)
    sep = VoiceSeparator(fe, fe.geometry)
    itd = np.asarray(fe.geometry.itd(pos), dtype=float)
    masks, ipds = [], []
    for a in range(0, len(feats), sep.window_frames):
        f = feats.slice(a, min(a + sep.window_frames, len(feats)))
        ipd, ild, w = sep.observations(f.spec[:, 0], f.spec[:, 1])
        cl = cluster_window(ipd, ild, w, fe.omega, itd, tau_max=sep.tau_max,
                            config=VoiceConfig(), activity=f.activity,
                            min_frequency=fe.config.min_frequency,
                            power=np.abs(f.spec[:, 0]) ** 2 + np.abs(f.spec[:, 1]) ** 2)
        masks.append(np.stack([voice_mask(cl.masks, cl.share, k) for k in range(2)]))
        ipds.append(ipd)
    mask, ipd = np.concatenate(masks, axis=1), np.concatenate(ipds)
    x = spec[:, 0]
    rows = []
    for k, pid in enumerate((1, 2)):
        ref = audio.images[pid][:, 0].astype(np.float64)
        act = BS.active_samples(ref, fs)
        base = BS.si_sdr(mix[:, 0], ref, act)

        def gain(y):
            return BS.si_sdr(y, ref, act) - base  # noqa: B023

        t, o = images[pid][:, 0], images[3 - pid][:, 0]
        irm = np.abs(t) ** 2 / np.maximum(np.abs(t) ** 2 + np.abs(x - t) ** 2, 1e-20)
        dom = np.abs(t) ** 2 > np.abs(o) ** 2
        energy = np.abs(x) ** 2
        acc = []
        for lo, hi in BANDS:
            b = (fe.freqs >= lo) & (fe.freqs < hi)
            e = energy[:, b]
            acc.append(float(np.sum(e * ((mask[k][:, b] > 0.5) == dom[:, b])) / e.sum()))
        rows.append(dict(
            seed=seed, speech=speech, person=pid, voice=gain(voices[pid]),
            irm=gain(synth(np.sqrt(irm) * x)), ibm=gain(synth(dom * x)), acc=acc,
            oracle_ipd=gain(synth(np.sqrt(oracle_ipd_mask(ipd, dom)) * x)),
            mwf1=gain(synth(oracle_mwf(spec, images[pid][:, 0], 1))),
            mwf4=gain(synth(oracle_mwf(spec, images[pid][:, 0], 4)))))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[403, 404, 405, 406, 407])
    ap.add_argument("--speech", nargs="+", default=["synthetic", "recorded"])
    args = ap.parse_args(argv)
    cols = ("voice", "irm", "ibm", "oracle_ipd", "mwf1", "mwf4")
    lines = ["| speech | voices | voice | IRM | IBM | oracle IPD mask | oracle MWF 1 frame | "
             "oracle MWF 4 frames | mask right <1.1 kHz | 1.1-3 kHz | >3 kHz |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for speech in args.speech:
        rows = []
        for seed in args.seeds:
            for r in run_scene(seed, speech):
                print(f"{speech:9s} seed {seed} person {r['person']}: " + ", ".join(
                    f"{c} {r[c]:+.2f}" for c in cols) + ", mask right " + " ".join(
                    f"{a:.2f}" for a in r["acc"]), flush=True)
                rows.append(r)
        mean = {c: np.mean([r[c] for r in rows]) for c in cols}
        acc = np.mean([r["acc"] for r in rows], axis=0)
        lines.append(f"| {speech} | {len(rows)} | " + " | ".join(
            f"{mean[c]:+.2f}" for c in cols) + " | " + " | ".join(f"{a:.2f}" for a in acc)
            + " |")
    table = "\n".join(lines)
    print(table)
    BS.RESULTS.mkdir(exist_ok=True)
    (BS.RESULTS / "bench_separation_bounds.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
