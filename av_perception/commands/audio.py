"""``av-perception audio INPUT --output features.csv``: the audio front-end alone."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..core.config import AudioFrontEndConfig, MicArrayConfig


def register(sub):
    p = sub.add_parser(
        "audio", help="binaural features (ITD, azimuth, ILD, activity) of a WAV file or a bag",
        description="Run the binaural front-end over a 2-channel WAV file or the audio topic "
                    "of a rosbag2 and write one CSV row per frame: t,itd,azimuth,ild,activity "
                    "(s, s, rad, dB, 0-1).  Warns about clipped audio (with the fraction of "
                    "samples at full scale) and reads a WAV cut short up to its last whole "
                    "sample; exits 1 when no frame could be computed (empty or all-NaN "
                    "input)."
                    "  Rows are flushed frame by frame to OUTPUT.partial and renamed to OUTPUT at "
                    "the end, also after an error or SIGINT/SIGTERM/SIGHUP (exit code 128 + "
                    "signal number): what was computed is kept; a run that computed nothing "
                    "leaves an existing OUTPUT as it was.")
    p.add_argument("input", help="2-channel WAV file, or rosbag2 directory"
                        "; a damaged bag (storage cut short by a crash, no metadata.yaml) "
                        "is read around the damage with a warning (repair it for other tools "
                        "with 'ros2 bag reindex')")
    p.add_argument("--output", "-o", required=True, help="feature CSV to write")
    p.add_argument("--config", help="ROS-params YAML (sections 'audio' and 'mics' are used)")
    p.add_argument("--topic", help="audio topic in the bag (detected when there is only one)")
    p.add_argument("--left", type=int, default=0, help="left-ear channel index (default 0)")
    p.add_argument("--right", type=int, default=1, help="right-ear channel index (default 1)")
    p.add_argument("--rate", type=int, help="raw bags without AudioInfo: sample rate (Hz)")
    p.add_argument("--channels", type=int, help="raw bags without AudioInfo: channel count")
    p.add_argument("--sample-format", default="S16LE",
                   help="raw bags without AudioInfo: sample format (default S16LE)")
    p.add_argument("--extra-columns", action="store_true",
                   help="also write reliability, direct_path and snr_db")
    p.add_argument("--plot", help="also write a PNG plot of azimuth and activity over time")
    p.add_argument("--numpy", action="store_true",
                   help="use the plain-numpy reference instead of the numba kernel")
    p.set_defaults(func=run)


def open_audio_source(args):
    """A WAV or bag audio source from the command-line arguments."""
    from ..io.audio_msgs import AudioFormat, BagAudioSource
    from ..io.audio_sources import WavAudioSource

    path = Path(args.input)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    is_bag = path.is_dir() or path.suffix in (".db3", ".mcap")
    if is_bag or (path.parent / "metadata.yaml").exists():
        fmt = None
        if args.rate or args.channels:
            fmt = AudioFormat(args.channels or 2, args.rate or 16000, args.sample_format)
        return BagAudioSource(path, args.topic, args.left, args.right, audio_format=fmt)
    return WavAudioSource(path, chunk_size=4096, channel_left=args.left, channel_right=args.right)


def run(args) -> int:
    import time

    from ..core.audio import AudioInputError, BinauralFeatures
    from ..io.audio_sources import ClippingMonitor
    from ..io.feature_files import FeatureCsvWriter
    from ..io.params import load_offline_configs
    from ..pipeline import AudioPipeline

    cfg = load_offline_configs(args.config, [AudioFrontEndConfig, MicArrayConfig])
    pipeline = AudioPipeline(cfg[AudioFrontEndConfig], cfg[MicArrayConfig],
                             use_numba=not args.numpy)
    source = ClippingMonitor(open_audio_source(args))
    errors, parts = [], []
    audio_s = 0.0
    t0 = time.perf_counter()
    # features are written chunk by chunk: an error or a signal keeps those computed
    with FeatureCsvWriter(args.output, extra_columns=args.extra_columns) as out:
        for chunk in source:
            audio_s += len(chunk.samples) / chunk.sample_rate
            try:
                feats = pipeline.process_audio(chunk.samples, chunk.sample_rate, chunk.stamp)
            except AudioInputError as exc:
                errors.append(f"chunk at {chunk.stamp:.3f} s: {exc}")
                continue
            out.write(feats)
            parts.append(feats)
    wall = time.perf_counter() - t0
    errors += list(getattr(source, "errors", []))
    if source.warning():
        errors.insert(0, source.warning())
    f = (BinauralFeatures.concatenate(parts) if parts else BinauralFeatures.empty(
        pipeline.front_end.n_bands, pipeline.audio_config.ild_band_edges))
    n = out.rows
    if args.plot and n:
        from ..viz import plot_audio_features

        plot_audio_features(args.plot, f, title=str(args.input))
    active = (f.activity >= 0.5) & np.isfinite(f.itd)
    rtf = audio_s / wall if wall > 0 else float("inf")
    print(f"{n} frames ({audio_s:.1f} s of audio) -> {args.output}; "
          f"{int(active.sum())} active; {rtf:.0f}x real time")
    for e in errors[:20]:
        print(f"warning: {e}", file=sys.stderr)
    if len(errors) > 20:
        print(f"warning: {len(errors) - 20} more errors", file=sys.stderr)
    if getattr(source, "truncated", False):
        print("warning: the bag is truncated or corrupt; the features of its readable part "
              "were written", file=sys.stderr)
    if n == 0:
        why = ("the input holds no audio" if audio_s == 0 else
               f"{audio_s:.3f} s of audio is shorter than one frame" if not errors else
               "every chunk was rejected (see the warnings above)")
        print(f"error: no feature frame could be computed: {why}", file=sys.stderr)
        if out.kept_existing:
            print(f"note: {args.output} was left as it was", file=sys.stderr)
        return 1
    return 0
