"""``av-perception separate BAG --output DIR``: each track's own voice, offline."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub):
    p = sub.add_parser(
        "separate", help="run the full pipeline over a rosbag2 and write each track's voice",
        description="Runs exactly what 'process' runs (DIR/tracks.csv is its track file), "
                    "then clusters the time-frequency bins of the audio per track (voices.* "
                    "parameters) and writes DIR/voice_<track_id>.wav per track: mono float32, "
                    "at the bag's audio sample rate, sample 0 = the bag's first audio sample, "
                    "as long as the bag's audio, zero where the track did not exist.  "
                    "Exit code 2 when the audio cannot be used (mono, a sample-rate change, no "
                    "usable chunk); audio chunks refused (NaN, infinite) are silent in the "
                    "voices and reported.")
    p.add_argument("bag", help="rosbag2 directory")
    p.add_argument("--output", "-o", required=True, help="directory to write (created)")
    p.add_argument("--config", help="ROS-params YAML (any node's sections are used)")
    p.add_argument("--audio-topic", help="audio topic (detected when there is only one)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    from ..core.tf_masks import VoiceConfig
    from ..io.params import load_offline_configs
    from ..io.voice_files import write_voice
    from ..nodes.settings import TrackingNodeConfig
    from ..offline import PROCESS_STAGES, bag_voices, process_bag, progress_printer, summarize
    from ..pipeline import TrackingConfig

    configs = load_offline_configs(args.config, (*PROCESS_STAGES, TrackingNodeConfig,
                                                 VoiceConfig))
    if configs[TrackingConfig].fixed_frame:  # the voices need the tracks in the camera frame
        configs[TrackingConfig] = dataclasses.replace(configs[TrackingConfig], fixed_frame="")
        print("note: tracking.fixed_frame ignored: separate tracks in the camera frame",
              file=sys.stderr)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: {out_dir} exists and is not a directory", file=sys.stderr)
        return 2
    problem = _audio_problem(args.bag, args.audio_topic)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    tracks_csv = out_dir / "tracks.csv"
    result = process_bag(args.bag, tracks_csv, configs, audio_topic=args.audio_topic,
                         keep_outputs=True, keep_spectra=True,
                         progress=None if args.quiet else progress_printer())
    if not args.quiet:
        print(file=sys.stderr)
    print(summarize(result, tracks_csv))
    try:
        voices = bag_voices(result, configs)
    except ValueError as exc:
        for e in list(dict.fromkeys(result.errors))[:5]:
            print(f"warning: {e}", file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    errors = list(dict.fromkeys(result.errors))
    for e in errors[:20]:
        print(f"warning: {e}", file=sys.stderr)
    if not voices.voices:
        print(f"note: no track existed while there was audio: no voice file written "
              f"({out_dir})")
        return 0
    for tid in sorted(voices.voices):
        write_voice(out_dir / f"voice_{tid}.wav", voices.voices[tid], voices.rate)
    n = len(next(iter(voices.voices.values())))
    audio_s = n / voices.rate
    print(f"voices: {len(voices.voices)} track(s) "
          f"({', '.join(map(str, sorted(voices.voices)))}), {audio_s:.1f} s each at "
          f"{voices.rate} Hz, {voices.windows} windows; voice stage "
          f"{audio_s / max(voices.wall_seconds, 1e-9):.0f}x real time -> {out_dir}")
    return 0


def _audio_problem(bag, topic) -> str | None:
    """Why the bag's audio cannot give voices (read from its first chunk), or None."""
    from ..io.audio_msgs import BagAudioSource
    from ..io.bag import BagError

    try:
        src = BagAudioSource(bag, topic)
        chunks = src.chunks()
        first = next(chunks, None)
        chunks.close()
    except (BagError, ValueError) as exc:
        return f"cannot read the audio of {bag}: {exc}"
    if first is None:
        why = f" ({src.errors[0]})" if src.errors else ""
        return f"the audio topic {src.topic} of {bag} holds no usable chunk{why}"
    channels = first.samples.shape[1] if first.samples.ndim == 2 else 1
    if channels != 2:
        return (f"the audio of {src.topic} has {channels} channel(s): separation needs the two "
                "ear channels (a 2-channel recording, or capture.channel_left/channel_right)")
    return None
