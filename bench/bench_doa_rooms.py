"""Per-frame direction in reverberant rooms the defaults were never tuned on (issue 19).

    nice .venv/bin/python bench/bench_doa_rooms.py
        [--rooms bench|holdout|tune|frontal|lateral|noisy] [--set key=value ...]
        [--pra-grid 0.1] [--out bench/results/doa_rooms.md]

Rooms: shoebox rooms (pyroomacoustics image source) drawn from a fixed seed list
(``BENCH_SEEDS``; ``--rooms tune`` draws from ``TUNE_SEEDS``, the only rooms any default
was tuned on; ``--rooms frontal`` 24 more tuning rooms from ``FRONTAL_SEEDS``, frontal
talkers at RT60 0.3-0.5 s and SNR 7-14 dB, :func:`draw_frontal_room`; ``--rooms lateral``
16 more, lateral recorded talkers at RT60 0.5-0.7 s, :func:`draw_lateral_room`; ``--rooms
noisy`` 16 more, far lateral recorded talkers at SNR 5-9 dB, :func:`draw_noisy_room`;
``--rooms holdout`` 24 more report rooms drawn as the benchmark's from ``HOLDOUT_SEEDS``,
never tuned on): size 4-9 x 4-8 x
2.5-3.5 m, RT60 0.2-0.7 s (stratified), the robot anywhere in the room, one talker at
1-3 m and |azimuth| stratified over 0-20, 20-45, 45-60 and 60-70 degrees (random side),
at the height of the microphones; spherically diffuse noise (the two-microphone sinc
coherence, pink spectrum) at 5-20 dB SNR; half of the rooms recorded speech (CMU ARCTIC,
:class:`RecordedSpeech`, at tape speeds 0.75-1.3), half the synthetic voice. Free-field
microphones 15 cm apart (the ``MicArrayConfig`` default).

Per room: the median absolute azimuth error over the active frames (activity >= 0.5 and
a finite ITD, as counted by ``av-perception audio``) of our front-end run through
``AudioPipeline`` in 4096-sample chunks (the path of ``av-perception audio``), and of
pyroomacoustics' fast DOA methods (SRP-PHAT, MUSIC, NormMUSIC), each given a block of 4
STFT frames (the frame and the 3 before it: the front-end's own window and framing) for
every 4th of the same frames, on a 0.1 degree grid over the front half plane
(``--pra-grid``; 0.5 until 2026-12-07, whose quantisation moved its per-room medians by up to 0.4
degree); and the same methods given all the active frames at once. TOPS, CSSM and WAVES
also work with two microphones but take 3-7 s per call (thousands of times slower than
real time per frame); given all the frames at once on the first five rooms they were
worse than SRP-PHAT in four of five (BENCHMARKS.md). Every setting of ours is also
reported on exactly the frames pyroomacoustics read (columns "..., pra's frames"), so
that the comparison with pyroomacoustics is on the same frames. Also the front-end's
real-time factor on one core.

Rendered rooms and pyroomacoustics' errors are cached under
``~/.cache/av_perception/bench_doa_rooms`` (they do not depend on the front-end).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from av_perception.core.config import AudioFrontEndConfig, MicArrayConfig  # noqa: E402

FS = 16000
DURATION = 4.0
CHUNK = 4096
BLOCK = 4
BENCH_SEEDS = tuple(range(1901, 1925))  # 24 rooms: the benchmark (never tuned on)
#: 24 more report rooms drawn as the benchmark's (``--rooms holdout``), first run when the
#: band onset (``audio.onset_band_hz``) was chosen after the first choice had been read on
#: the benchmark rooms: a test that no choice has seen
HOLDOUT_SEEDS = tuple(range(1925, 1949))
TUNE_SEEDS = tuple(range(7301, 7317))  # 16 rooms: the only ones used to choose defaults
#: 24 more tuning rooms like the report rooms where pyroomacoustics read closest to us
#: (frontal talkers, moderate reverberation and noise): ``--rooms frontal``
FRONTAL_SEEDS = tuple(range(7401, 7425))
#: 16 more tuning rooms like the report room whose recorded talker read worst (1907):
#: lateral recorded talkers in long reverberation (``--rooms lateral``)
LATERAL_SEEDS = tuple(range(7501, 7517))
#: 16 more tuning rooms like the fresh report room that read a talker at 60 deg worst (1948):
#: lateral recorded talkers far away in strong diffuse noise (``--rooms noisy``)
NOISY_SEEDS = tuple(range(7601, 7617))
AZ_BANDS = ((0.0, 20.0), (20.0, 45.0), (45.0, 60.0), (60.0, 70.0))
PRA_FRAME_METHODS = ("SRP", "MUSIC", "NormMUSIC")  # fast enough for one DOA per frame
PRA_WHOLE_METHODS = ("SRP", "MUSIC", "NormMUSIC")  # TOPS, CSSM, WAVES: 3-7 s per call
CACHE_VERSION = 1
#: suffix of a setting's column on the frames pyroomacoustics read (every ``--stride``-th one)
SAME_FRAMES = ", pra's frames"


def cache_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "av_perception" / "bench_doa_rooms"


# ------------------------------------------------------------------------ rooms
def draw_room(seed: int, index: int, n_rooms: int, rt60_rank: int) -> dict:
    """The parameters of room ``index`` (of ``n_rooms``) drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    lo, hi = AZ_BANDS[index % len(AZ_BANDS)]
    az = rng.uniform(lo, hi) * rng.choice([-1.0, 1.0])
    recorded = (index // len(AZ_BANDS)) % 2 == 1
    rt60 = 0.2 + 0.5 * (rt60_rank + rng.uniform()) / n_rooms
    dist = rng.uniform(1.0, 3.0)
    snr = rng.uniform(5.0, 20.0)
    height = rng.uniform(1.1, 1.7)
    dims = np.array([rng.uniform(4.0, 9.0), rng.uniform(4.0, 8.0), rng.uniform(2.5, 3.5)])
    # the source must fit in the room with 0.4 m to spare: grow the room if needed
    dx = -dist * np.sin(np.radians(az))
    dy = dist * np.cos(np.radians(az))
    dims[0] = max(dims[0], abs(dx) + 1.2)
    dims[1] = max(dims[1], dy + 1.2)
    x_lo, x_hi = max(0.4, 0.4 - dx), min(dims[0] - 0.4, dims[0] - 0.4 - dx)
    y_lo, y_hi = 0.4, dims[1] - 0.4 - dy
    head = [rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi), height]
    return {"seed": seed, "azimuth": float(az), "distance": float(dist), "rt60": float(rt60),
            "snr_db": float(snr), "room": [float(v) for v in dims],
            "head": [float(v) for v in head], "recorded": bool(recorded),
            "tape_speed": float(rng.uniform(0.75, 1.3)), "voice_seed": int(rng.integers(1 << 30)),
            "noise_seed": int(rng.integers(1 << 30)), "person": int(rng.integers(4))}


def draw_frontal_room(seed: int, index: int) -> dict:
    """A tuning room with a frontal talker (|azimuth| 3-18 deg, 1.5-3 m), RT60 0.3-0.5 s and
    SNR 7-14 dB, the voice alternating synthetic / recorded: the conditions of the report
    rooms where pyroomacoustics' best method read closest to ours."""
    return _draw_talker_room(seed, 1, (3.0, 18.0), (0.3, 0.5), (7.0, 14.0),
                             recorded=index % 2 == 1)


def draw_lateral_room(seed: int) -> dict:
    """A tuning room with a lateral recorded talker (|azimuth| 45-65 deg, 1.5-3 m), RT60
    0.5-0.7 s and SNR 9-17 dB: the conditions of the report room where the recorded-speech
    target is closest to its limit (1907)."""
    return _draw_talker_room(seed, 2, (45.0, 65.0), (0.5, 0.7), (9.0, 17.0), recorded=True)


def draw_noisy_room(seed: int) -> dict:
    """A tuning room with a lateral recorded talker far away (|azimuth| 50-70 deg, 2-3 m),
    RT60 0.2-0.7 s and strong diffuse noise (SNR 5-9 dB): the conditions of the fresh report
    room whose talker at 60 deg read worst (1948)."""
    return _draw_talker_room(seed, 3, (50.0, 70.0), (0.2, 0.7), (5.0, 9.0), recorded=True,
                             distance_m=(2.0, 3.0))


def _draw_talker_room(seed: int, stream: int, azimuth_deg, rt60_s, snr_db,
                      recorded: bool, distance_m=(1.5, 3.0)) -> dict:
    """draw_room's room, robot height and voice with a talker ``distance_m`` away (1.5-3
    m) at |azimuth| in ``azimuth_deg`` (either side), RT60 and SNR drawn in the given
    ranges, the room grown and the robot placed so that both stay 0.4 m inside the walls."""
    rng = np.random.default_rng([seed, stream])  # a stream apart from draw_room's
    az = rng.uniform(*azimuth_deg) * rng.choice([-1.0, 1.0])
    room = draw_room(seed, 0, 1, 0)  # the room, the robot's height and the voice
    dist = rng.uniform(*distance_m)
    dims = np.array(room["room"])
    dx = -dist * np.sin(np.radians(az))
    dy = dist * np.cos(np.radians(az))
    dims[0] = max(dims[0], abs(dx) + 1.2)
    dims[1] = max(dims[1], dy + 1.2)
    x_lo, x_hi = max(0.4, 0.4 - dx), min(dims[0] - 0.4, dims[0] - 0.4 - dx)
    y_lo, y_hi = 0.4, dims[1] - 0.4 - dy
    room.update(azimuth=float(az), distance=float(dist), rt60=float(rng.uniform(*rt60_s)),
                snr_db=float(rng.uniform(*snr_db)), room=[float(v) for v in dims],
                head=[float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi)),
                      room["head"][2]],
                recorded=bool(recorded))
    return room


def rooms(kind: str) -> list[dict]:
    if kind == "frontal":
        return [draw_frontal_room(s, i) for i, s in enumerate(FRONTAL_SEEDS)]
    if kind == "lateral":
        return [draw_lateral_room(s) for s in LATERAL_SEEDS]
    if kind == "noisy":
        return [draw_noisy_room(s) for s in NOISY_SEEDS]
    seeds = {"bench": BENCH_SEEDS, "holdout": HOLDOUT_SEEDS}.get(kind, TUNE_SEEDS)
    ranks = np.random.default_rng(sum(seeds)).permutation(len(seeds))
    return [draw_room(s, i, len(seeds), int(ranks[i])) for i, s in enumerate(seeds)]


def dry_speech(room: dict) -> np.ndarray:
    n = int(DURATION * FS)
    if room["recorded"]:
        from av_perception.sim.voice import RecordedSpeech, VoiceSpec

        people = [SimpleNamespace(id=k, voice=VoiceSpec(f0=180.0)) for k in range(4)]
        person = people[room["person"]]
        person.voice = VoiceSpec(f0=RecordedSpeech.RECORDED_F0 * room["tape_speed"])
        return RecordedSpeech(people).render(person, n, FS, None)
    from av_perception.sim.signals import synthetic_voice

    f0 = 100.0 + 100.0 * (room["tape_speed"] - 0.75) / 0.55
    return synthetic_voice(FS, DURATION, f0=f0, seed=room["voice_seed"], pause_every=1.0)


def diffuse_noise(n: int, spacing: float, c: float, seed: int) -> np.ndarray:
    """(n, 2) pink noise with the coherence of a spherically isotropic field between two
    omnidirectional microphones ``spacing`` m apart: sinc(2 pi f spacing / c)."""
    rng = np.random.default_rng(seed)
    nfft = 1 << int(np.ceil(np.log2(n)))
    f = np.fft.rfftfreq(nfft, 1.0 / FS)
    shape = 1.0 / np.sqrt(np.maximum(f, 50.0))
    g = np.sinc(2 * f * spacing / c)  # np.sinc(x) = sin(pi x) / (pi x)
    n1 = rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))
    n2 = rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))
    left = n1
    right = g * n1 + np.sqrt(np.maximum(1.0 - g * g, 0.0)) * n2
    y = np.stack([np.fft.irfft(left * shape, nfft)[:n], np.fft.irfft(right * shape, nfft)[:n]],
                 axis=1)
    return y / np.sqrt(np.mean(y ** 2))


def render_room(room: dict, mics: MicArrayConfig, cache: bool = True) -> np.ndarray:
    """(n, 2) microphone signals of a room (cached on disk unless ``cache`` is False)."""
    key = hashlib.sha1(json.dumps([room, CACHE_VERSION, list(mics.left), list(mics.right)],
                                  sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"room_{key}.npy"
    if cache and path.is_file():
        return np.load(path)
    from av_perception.sim.roomsim import RoomSetup, render_sources, source_at

    pos = source_at(np.radians(room["azimuth"]), room["distance"])
    setup = RoomSetup(room_dim=room["room"], rt60=room["rt60"], head_position=room["head"],
                      fs=FS)
    y = render_sources([(dry_speech(room), pos, 0.0)], setup, mics, duration=DURATION)
    power = np.mean(y ** 2)
    spacing = float(np.linalg.norm(np.subtract(mics.left, mics.right)))
    noise = diffuse_noise(len(y), spacing, mics.speed_of_sound, room["noise_seed"])
    y = y + noise * np.sqrt(power / 10 ** (room["snr_db"] / 10))
    y *= 0.5 / np.max(np.abs(y))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, y)
    return y


# -------------------------------------------------------------------- estimators
def run_front_end(y: np.ndarray, audio: AudioFrontEndConfig, mics: MicArrayConfig):
    """Features through AudioPipeline, 4096-sample chunks (as ``av-perception audio``)."""
    from av_perception.core.audio import BinauralFeatures
    from av_perception.pipeline import AudioPipeline

    pipe = AudioPipeline(audio, mics)
    parts = [pipe.process_audio(y[i:i + CHUNK], FS, i / FS) for i in range(0, len(y), CHUNK)]
    return BinauralFeatures.concatenate(parts)


def active_frames(f) -> np.ndarray:
    return np.isfinite(f.itd) & (f.activity >= 0.5)


def pra_errors(y: np.ndarray, frames: np.ndarray, az: float, mics: MicArrayConfig,
               stride: int, grid_step: float = 0.1) -> dict:
    """Median absolute error (deg) of the per-frame pyroomacoustics methods over ``frames``
    (indices of front-end frames; every ``stride``-th one), one block of BLOCK STFT frames
    each, on a grid of ``grid_step`` deg; and the error of every method given all the frames at
    once ("whole <method>")."""
    import pyroomacoustics as pra

    from av_perception.core.audio import BinauralFrontEnd, frame_signal

    fe = BinauralFrontEnd(mics=mics)
    spec_l, spec_r = fe.spectra(frame_signal(y, 512, 256))
    X = np.stack([spec_l.T, spec_r.T])
    positions = np.array([[mics.left[0], mics.right[0]], [mics.left[2], mics.right[2]]])
    # pra angle = azimuth + 90 deg
    grid = np.radians(np.arange(0.0, 180.0 + grid_step / 2, grid_step))
    out = {}
    for method in PRA_WHOLE_METHODS:
        doa = pra.doa.algorithms[method](positions, FS, 512, c=mics.speed_of_sound, num_src=1,
                                         azimuth=grid)
        try:
            doa.locate_sources(X[:, :, frames], freq_range=[150.0, 7500.0])
            out[f"whole {method}"] = float(abs(np.degrees(doa.azimuth_recon[0]) - 90.0 - az))
        except Exception:  # noqa: BLE001
            out[f"whole {method}"] = 90.0
        if method not in PRA_FRAME_METHODS:
            continue
        errs = []
        for i in frames[::stride]:
            block = X[:, :, max(0, i - BLOCK + 1):i + 1]
            try:
                doa.locate_sources(block, freq_range=[150.0, 7500.0])
                errs.append(abs(np.degrees(doa.azimuth_recon[0]) - 90.0 - az))
            except Exception:  # noqa: BLE001 - a failing estimate counts as 90 deg
                errs.append(90.0)
        out[method] = float(np.median(errs)) if errs else 90.0
    return out


def cached_pra(room: dict, y, frames, mics, stride: int, grid_step: float = 0.1) -> dict:
    key_items = [room, CACHE_VERSION, stride, frames.tolist()]
    if grid_step != 0.5:  # the 0.5 deg grid (until 2026-12-07) keeps its cached results
        key_items.append(grid_step)
    key = hashlib.sha1(json.dumps(key_items, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"pra_{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    res = pra_errors(y, frames, room["azimuth"], mics, stride, grid_step)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))
    return res


def realtime_factor(audio: AudioFrontEndConfig, mics: MicArrayConfig, y: np.ndarray) -> float:
    """Audio seconds per wall second of the front-end (best of 3) on one core."""
    from av_perception.pipeline import AudioPipeline

    pipe = AudioPipeline(audio, mics)
    pipe.warm_up()
    best = np.inf
    for _ in range(3):
        pipe.front_end.reset()
        t0 = time.perf_counter()
        for i in range(0, len(y), CHUNK):
            pipe.process_audio(y[i:i + CHUNK], FS, i / FS)
        best = min(best, time.perf_counter() - t0)
    return len(y) / FS / best


# ------------------------------------------------------------------------ report
def categories(rooms_: list[dict]) -> dict:
    az = np.array([abs(r["azimuth"]) for r in rooms_])
    rt = np.array([r["rt60"] for r in rooms_])
    rec = np.array([r["recorded"] for r in rooms_])
    return {
        "all": np.ones(len(rooms_), bool),
        "azimuth <= 45, RT60 <= 0.5": (az <= 45) & (rt <= 0.5),
        "azimuth <= 45": az <= 45,
        "azimuth 45-60": (az > 45) & (az < 60),
        "azimuth 60-70": az >= 60,
        "synthetic": ~rec,
        "recorded": rec,
        "RT60 0.2-0.35": rt < 0.35,
        "RT60 0.35-0.5": (rt >= 0.35) & (rt <= 0.5),
        "RT60 0.5-0.7": rt > 0.5,
    }


def report(rooms_, results: dict, rtf: float | None, command: str) -> list[str]:
    names = list(results)
    cats = categories(rooms_)
    lines = [f"Command: `{command}`", "",
             "Per room: median absolute per-frame azimuth error (deg) over the front-end's "
             "active frames.", "",
             "| room | speech | RT60 s | dist m | SNR dB | azimuth | "
             + " | ".join(names) + " |",
             "|---:|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    for i, r in enumerate(rooms_):
        lines.append(
            f"| {r['seed']} | {'recorded' if r['recorded'] else 'synthetic'} | {r['rt60']:.2f} "
            f"| {r['distance']:.1f} | {r['snr_db']:.0f} | {r['azimuth']:+.0f} | "
            + " | ".join(f"{results[n][i]:.1f}" for n in names) + " |")
    lines += ["", "By category: mean (worst) of the per-room medians, deg.", "",
              "| category | rooms | " + " | ".join(names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    for cat, m in cats.items():
        if not m.any():
            continue
        cells = [f"{np.mean(np.array(results[n])[m]):.1f} ({np.max(np.array(results[n])[m]):.1f})"
                 for n in names]
        lines.append(f"| {cat} | {int(m.sum())} | " + " | ".join(cells) + " |")
    if rtf is not None:
        lines += ["", f"Front-end real-time factor on one core (NUMBA_NUM_THREADS=1): {rtf:.0f}x"]
    return lines


def parse_sets(items) -> dict:
    out = {}
    for item in items or []:
        k, v = item.split("=", 1)
        ftype = type(getattr(AudioFrontEndConfig(), k))
        out[k] = ftype(v) if ftype is not str else v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rooms", choices=("bench", "holdout", "tune", "frontal", "lateral", "noisy"),
                    default="bench", help="bench, holdout: report rooms; tune, frontal, "
                    "lateral, noisy: tuning rooms")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="front-end setting (audio section) to evaluate besides the default")
    ap.add_argument("--before", action="store_true",
                    help="also the front-end before issue 19 (coherence weighting, each frame "
                         "alone)")
    ap.add_argument("--no-pra", action="store_true", help="skip pyroomacoustics")
    ap.add_argument("--stride", type=int, default=4,
                    help="pyroomacoustics on every STRIDE-th active frame (default 4)")
    ap.add_argument("--pra-grid", type=float, default=0.1,
                    help="pyroomacoustics' azimuth grid step, deg (default 0.1; 0.5 until "
                         "2026-12-07: its quantisation moved its medians by up to 0.4 deg)")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    mics = MicArrayConfig()
    configs = {"ours (default)": AudioFrontEndConfig()}
    if args.before:
        configs["ours before (coherence, no memory)"] = AudioFrontEndConfig(
            direct_path_weighting="coherence", precedence_time=0.0)
    if args.set:
        configs["ours (" + ", ".join(args.set) + ")"] = AudioFrontEndConfig(**parse_sets(args.set))
    rooms_ = rooms(args.rooms)
    results: dict[str, list[float]] = {n: [] for n in configs}
    pra_all: list[dict] = []
    same_frames: dict[str, list[float]] = {}
    signals = []
    for r in rooms_:
        y = render_room(r, mics)
        signals.append(y)
        ref_frames = None
        frame_errors = {}
        for name, cfg in configs.items():
            f = run_front_end(y, cfg, mics)
            act = active_frames(f)
            if ref_frames is None:
                ref_frames = np.flatnonzero(act)
            frame_errors[name] = np.abs(np.degrees(f.azimuth) - r["azimuth"])
            err = frame_errors[name][act]
            results[name].append(float(np.median(err)) if len(err) else 90.0)
        if not args.no_pra:
            pra_all.append(cached_pra(r, y, ref_frames, mics, args.stride, args.pra_grid))
            # each setting on exactly the frames pyroomacoustics read (every stride-th one)
            for name in configs:
                same = frame_errors[name][ref_frames[::args.stride]]
                same_frames.setdefault(name, []).append(
                    float(np.median(same)) if len(same) else 90.0)
        print(f"room {r['seed']}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in results.items())
              + ("" if args.no_pra else ", pra " + ", ".join(
                  f"{k} {v:.1f}" for k, v in pra_all[-1].items())),
              flush=True)
    whole = {}
    if pra_all:
        for name, values in same_frames.items():
            results[name + SAME_FRAMES] = values
        for m in PRA_FRAME_METHODS:
            results[f"pra {m}"] = [p[m] for p in pra_all]
        results["pra best per room"] = [min(p[m] for m in PRA_FRAME_METHODS) for p in pra_all]
        whole = {f"pra {m}, whole signal": [p[f"whole {m}"] for p in pra_all]
                 for m in PRA_WHOLE_METHODS}
    rtf = None
    if not args.no_speed:
        rtf = realtime_factor(configs["ours (default)"], mics, np.concatenate(signals[:5]))
    cmd = "nice .venv/bin/python bench/bench_doa_rooms.py" + (
        f" --rooms {args.rooms}" if args.rooms != "bench" else "") + (
        " --before" if args.before else "") + (
        f" --pra-grid {args.pra_grid:g}" if args.pra_grid != 0.1 else "") + "".join(
        f" --set {s}" for s in args.set or [])
    lines = report(rooms_, results, rtf, cmd)
    if whole:
        lines += ["", "pyroomacoustics given all the active frames at once (one DOA per room): "
                  "mean (worst) error, deg: " + "; ".join(
                      f"{k.split(',')[0][4:]} {np.mean(v):.1f} ({np.max(v):.1f})"
                      for k, v in whole.items())]
    print("\n".join(lines))
    out = Path(args.out or f"bench/results/doa_rooms_{args.rooms}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
