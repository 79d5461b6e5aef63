"""Separation of simultaneous talkers: SI-SDR improvement of each track's voice.

Scenes (one per seed and case; the evaluation seeds are 403-407, never tuned on): a 6 x 5
x 3 m room, RT60 U(0.3, 0.4) s, diffuse noise SNR U(15, 20) dB, the default 15 cm microphone
bar, talkers still at 1.6-3.0 m, azimuths drawn in [-50, 50] deg at least 20 deg apart:

* ``double``: two people talking at once for the whole scene (6 s);
* ``alone``: one person talking (two tracks exist: the second person is present, silent).

``--rt60`` and ``--distance`` change the room and the distances (characterisation rows).

Speech ``synthetic`` (the built-in voice model) or ``recorded`` (CMU ARCTIC, the
simulator's recorded option).  The voices are made by
:class:`~av_perception.pipeline.voices.VoiceSeparator` from the front-end's STFT with the
tracks at their true positions (oracle tracks: the tracker is not in this loop); with
``--speaking truth`` their outputs (every 0.1 s) carry the scene's speaking status
(oracle), which ``voices.speaking_gate`` uses; ``--baseline`` also runs main's former
voices (``BASELINE``) on the same scenes; ``--spatial-only`` the voices without the
harmonic combs (``voices.harmonic_weight`` 0).  Score:
SI-SDR of a talker's voice against its reverberant image at the left microphone, minus the
SI-SDR of the left microphone's mixture against the same image (dB), over the samples
where the image is active; ``IRM``: the same for the ideal ratio mask (from the true
images, same STFT and overlap-add) -- the bound of masking.  The stage's cost: real-time
factor of the voice stage alone (front-end excluded) on one core.

Run:  PYTHONPATH=. .venv/bin/python bench/bench_separation.py [--seeds 403 404 405 406 407]
      [--speech synthetic recorded] [--method mask] [--baseline] [--speaking truth]
      [--set frequency_prior_pool=0 ...]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from av_perception.core.audio import BinauralFrontEnd  # noqa: E402
from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig  # noqa: E402
from av_perception.core.separation import finish_overlap_add, overlap_add  # noqa: E402
from av_perception.core.tf_masks import VoiceConfig  # noqa: E402
from av_perception.io.heads import load_head_model  # noqa: E402
from av_perception.pipeline.voices import VoiceSeparator  # noqa: E402
from av_perception.sim.audio import render_audio  # noqa: E402
from av_perception.sim.presets import MAN_A, WOMAN_A  # noqa: E402
from av_perception.sim.scene import (  # noqa: E402
    DUMMY_HEAD_EARS,
    NoiseSpec,
    PersonSpec,
    RobotSpec,
    RoomSpec,
    Scene,
    SpeechSpec,
    Utterance,
)
from av_perception.sim.trajectory import still  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def make_bench_scene(seed: int, case: str, speech: str, duration: float = 6.0,
                     rt60=(0.3, 0.4), distance=(1.6, 3.0), head: str = "free_field") -> Scene:
    rng = np.random.default_rng([seed, 20])
    while True:
        az = np.radians(rng.uniform(-50, 50, 2))
        if abs(az[0] - az[1]) >= np.radians(20):
            break
    dist = rng.uniform(*distance, 2)
    people = []
    for i in range(2):
        x, z = dist[i] * np.sin(-az[i]), dist[i] * np.cos(az[i])  # +x right: az left > 0
        people.append(PersonSpec(i + 1, still((float(x), -0.4, float(z))),
                                 voice=(WOMAN_A, MAN_A)[i]))
    utt = [Utterance(1, 0.2, duration - 0.2)]
    if case == "double":
        utt.append(Utterance(2, 0.3, duration - 0.1))
    robot = RobotSpec(head=head)
    if head == "kemar":  # as make_scene: the ears at the dummy head's, its measured table
        robot.mics = robot.mics.replace(left=DUMMY_HEAD_EARS[0], right=DUMMY_HEAD_EARS[1],
                                        head_model="measured", measured_table="kemar")
    return Scene(name=f"sep_{case}", duration=duration, seed=seed, robot=robot,
                 room=RoomSpec(rt60=float(rng.uniform(*rt60))), people=people,
                 utterances=utt, noise=NoiseSpec(snr_db=float(rng.uniform(15, 20))),
                 speech=SpeechSpec(source=speech))


def si_sdr(est, ref, active) -> float:
    est, ref = est[active], ref[active]
    a = np.dot(est, ref) / max(np.dot(ref, ref), 1e-20)
    e = est - a * ref
    return float(10 * np.log10(max(np.dot(a * ref, a * ref), 1e-20) / max(np.dot(e, e), 1e-20)))


def active_samples(ref, rate, frame=0.02, rel_db=-40.0):
    n = int(rate * frame)
    m = len(ref) // n
    p = np.mean(ref[:m * n].reshape(m, n) ** 2, axis=1)
    on = p > p.max() * 10 ** (rel_db / 10)
    mask = np.repeat(on, n)
    return np.concatenate([mask, np.zeros(len(ref) - len(mask), bool)])


def irm_voice(fe, images, mix, pid, n):
    """The ideal ratio mask's voice of person ``pid`` at the left microphone."""
    cfg = fe.config
    fe_ref = BinauralFrontEnd(cfg, fe.geometry, keep_spectra=True)
    spec_mix = fe_ref.process(mix, cfg.processing_rate, 0.0)
    target = BinauralFrontEnd(cfg, fe.geometry, keep_spectra=True).process(
        images[pid], cfg.processing_rate, 0.0).spec[:, 0]
    rest = spec_mix.spec[:, 0] - target
    irm = np.abs(target) ** 2 / np.maximum(np.abs(target) ** 2 + np.abs(rest) ** 2, 1e-20)
    starts = np.round(spec_mix.stamp * cfg.processing_rate - (cfg.frame_length - 1) / 2)
    out, norm = overlap_add(np.sqrt(irm) * spec_mix.spec[:, 0], starts.astype(int), n,
                            fe.window)
    return finish_overlap_add(out, norm)


def _outputs(scene, ids, pos, speaking: str, step: float = 0.1):
    """Tracker outputs of the still talkers every ``step`` s: with the scene's true
    speaking status (``speaking='truth'``) or without one (``'none'``)."""
    if speaking == "none":
        return [_output(ids, pos)]
    t = np.arange(0.0, scene.duration + step, step)
    truth = scene.speaking(t)
    return [_output(ids, pos, t[i], np.array([float(truth[int(p)][i]) for p in ids]))
            for i in range(len(t))]


def run_case(seed, case, speech, vcfgs, speaking="none", **scene_kw):
    """Rows of every voice of the scene for each config of ``vcfgs`` {name: VoiceConfig}
    (the same scene, the same mixture)."""
    scene = make_bench_scene(seed, case, speech, **scene_kw)
    audio = render_audio(scene, keep_images=True)
    fs = audio.rate
    acfg = AudioFrontEndConfig()
    assert fs == acfg.processing_rate
    mics = MicArrayConfig()
    if scene.robot.head == "kemar":  # the model the robot would use: the measured table
        m = scene.robot.mics
        mics = MicArrayConfig(left=tuple(m.left), right=tuple(m.right), head_model="measured",
                              measured_table="kemar")
    mics = load_head_model(mics, acfg)
    mix = audio.samples.astype(np.float64)
    n = len(mix)
    fe = BinauralFrontEnd(acfg, mics, keep_spectra=True)
    feats = fe.process(mix, fs, 0.0)
    pos = np.array([p.trajectory().position([0.0])[0] + np.asarray(scene.mouth_offset)
                    for p in scene.people])
    outs = _outputs(scene, np.array([p.id for p in scene.people]), pos, speaking)
    talkers = [1, 2] if case == "double" else [1]
    irms = {pid: irm_voice(fe, {k: v.astype(float) for k, v in audio.images.items()}, mix,
                           pid, n) for pid in talkers}
    rows = []
    for name, vcfg in vcfgs.items():
        sep = VoiceSeparator(fe, fe.geometry, vcfg)
        sep.run(feats.slice(0, 60), outs, 0.0, n)  # compile / load the kernels first
        sep = VoiceSeparator(fe, fe.geometry, vcfg)
        t0 = time.process_time()  # CPU: comparable under load
        res = sep.run(feats, outs, 0.0, n)
        cost = time.process_time() - t0
        for pid in talkers:
            ref = audio.images[pid][:, 0].astype(np.float64)
            act = active_samples(ref, fs)
            base = si_sdr(mix[:, 0], ref, act)
            gain = si_sdr(res.voices[pid], ref, act) - base
            irm = si_sdr(irms[pid], ref, act) - base
            rows.append(dict(config=name, seed=seed, case=case, speech=speech, person=pid,
                             base=base, gain=gain, irm=irm, rt=(n / fs) / cost))
    return rows


def _output(ids, pos, stamp=0.0, speaking=None):
    out = type("Out", (), {"stamp": stamp, "ids": ids, "position": pos})()
    if speaking is not None:
        out.speaking = speaking
    return out


# main's voices before issue 20's second pass (per-window priors, masks on the left mic)
BASELINE = dict(method="mask", frequency_prior_pool=0, speaking_gate=0.0)


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[403, 404, 405, 406, 407])
    ap.add_argument("--speech", nargs="+", default=["synthetic", "recorded"])
    ap.add_argument("--method", default=None, help="voices.method (default: the default)")
    ap.add_argument("--rt60", type=float, nargs=2, default=(0.3, 0.4), metavar=("LO", "HI"),
                    help="RT60 range (s), default 0.3 0.4 (0 0: anechoic)")
    ap.add_argument("--distance", type=float, nargs=2, default=(1.6, 3.0),
                    metavar=("LO", "HI"), help="talker distance range (m), default 1.6 3.0")
    ap.add_argument("--head", default="free_field", choices=("free_field", "kemar"),
                    help="the robot's ears (kemar: the dummy head, its measured model)")
    ap.add_argument("--tag", default="", help="suffix of the results file")
    ap.add_argument("--speaking", default="none", choices=("none", "truth"),
                    help="the tracks' speaking status: none (every track modelled) or the "
                    "scene's truth (oracle; used by voices.speaking_gate)")
    ap.add_argument("--baseline", action="store_true",
                    help="also run main's former voices (" + ", ".join(
                        f"{k} {v}" for k, v in BASELINE.items()) + ") on the same scenes")
    ap.add_argument("--spatial-only", action="store_true",
                    help="also run the voices without the harmonic combs "
                    "(voices.harmonic_weight 0: the spatial cues alone) on the same scenes")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                    help="voices parameters of the run (e.g. frequency_prior_pool=0)")
    ap.add_argument("--hop", type=float, default=None,
                    help="also run the voices with this voices.hop (s; the live voices' "
                    "voice_output.hop is 0.064) on the same scenes")
    args = ap.parse_args(argv)
    scene_kw = dict(rt60=tuple(args.rt60), distance=tuple(args.distance), head=args.head)
    vcfg = VoiceConfig()
    if args.method:
        vcfg = dataclasses.replace(vcfg, method=args.method)
    if args.set:
        vcfg = dataclasses.replace(vcfg, **{k: _value(v) for k, v in
                                            (a.split("=", 1) for a in args.set)})
    vcfgs = {"voices": vcfg}
    if args.baseline:
        vcfgs = {"main": dataclasses.replace(VoiceConfig(), **BASELINE), **vcfgs}
    if args.spatial_only:
        vcfgs = {"spatial": dataclasses.replace(vcfg, harmonic_weight=0.0), **vcfgs}
    if args.hop is not None:
        vcfgs[f"hop {args.hop:g}"] = dataclasses.replace(vcfg, hop=args.hop)
    rows = []
    for speech in args.speech:
        for case in ("double", "alone"):
            for seed in args.seeds:
                r = run_case(seed, case, speech, vcfgs, speaking=args.speaking, **scene_kw)
                for x in r:
                    print(f"{x['config']:6s} {speech:9s} {case:6s} seed {seed} person "
                          f"{x['person']}: mixture {x['base']:6.2f} dB, voice {x['gain']:+6.2f}"
                          f" dB, IRM {x['irm']:+6.2f} dB, stage {x['rt']:.0f}x real time",
                          flush=True)
                rows.extend(r)
    lines = ["| voices | speech | case | voices | SI-SDR gain mean (dB) | worst | IRM bound "
             "mean | IRM worst | mixture SI-SDR mean | stage x real time, CPU (worst) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, speech, case in itertools.product(vcfgs, args.speech, ("double", "alone")):
        sel = [x for x in rows if x["speech"] == speech and x["case"] == case
               and x["config"] == name]
        if not sel:
            continue
        g = np.array([x["gain"] for x in sel])
        i = np.array([x["irm"] for x in sel])
        b = np.array([x["base"] for x in sel])
        rt = min(x["rt"] for x in sel)
        lines.append(f"| {name} | {speech} | {case} | {len(sel)} | {g.mean():+.2f} | "
                     f"{g.min():+.2f} | {i.mean():+.2f} | {i.min():+.2f} | {b.mean():.2f} | "
                     f"{rt:.0f} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    tag = ((f"_{args.method}" if args.method else "") + (f"_{args.tag}" if args.tag else "")
           + (f"_hop{args.hop:g}" if args.hop is not None else "")
           + ("_truth" if args.speaking == "truth" else "")
           + ("_spatial" if args.spatial_only else ""))
    (RESULTS / f"bench_separation{tag}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
