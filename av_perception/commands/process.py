"""``av-perception process BAG --output tracks.csv``: the full pipeline, offline."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub):
    p = sub.add_parser(
        "process", help="run the full pipeline over a rosbag2 and write a track file",
        description="Audio features, visual observations and the multi-speaker tracker over a "
                    "rosbag2 (sqlite3 or mcap), in time order, as fast as possible.  Writes "
                    "the track file stamp,track_id,x,y,z,speaking (one row per confirmed "
                    "track per image frame)."
                    "  Rows are flushed frame by frame to OUTPUT.partial and renamed to OUTPUT at "
                    "the end, also after an error or SIGINT/SIGTERM/SIGHUP (exit code 128 + "
                    "signal number): what was computed is kept; a run that computed nothing "
                    "leaves an existing OUTPUT as it was.  --output-bag is closed "
                    "properly too (metadata written, readable by replay).")
    p.add_argument("bag", help="rosbag2 directory"
                        "; a damaged bag (storage cut short by a crash, no metadata.yaml) "
                        "is read around the damage with a warning (repair it for other tools "
                        "with 'ros2 bag reindex')")
    p.add_argument("--output", "-o", required=True, help="track file (CSV) to write")
    p.add_argument("--config", help="ROS-params YAML (any node's sections are used)")
    p.add_argument("--start", type=float, help="seconds from the bag's start")
    p.add_argument("--duration", type=float, help="seconds to process")
    p.add_argument("--audio-topic", help="audio topic (detected when there is only one)")
    p.add_argument("--left-topic", help="left image topic (detected by default)")
    p.add_argument("--right-topic", help="right image topic")
    p.add_argument("--left-info", help="left camera_info topic")
    p.add_argument("--right-info", help="right camera_info topic")
    p.add_argument("--slop", type=float, default=0.02,
                   help="largest left/right stamp difference of a pair (s, default 0.02)")
    p.add_argument("--attention", metavar="CSV",
                   help="also write the attention target of every tracker step (CSV "
                        "stamp,track_id,x,y,z; track_id -1 and empty x,y,z: no target), "
                        "scored by 'evaluate' (attention.* parameters)")
    p.add_argument("--output-bag", metavar="DIR",
                   help="also write a rosbag2 with speakers (PointCloud2), speakers/markers "
                        "(MarkerArray), speakers/image (annotated left image) and, unless "
                        "attention.enabled is false, attention (PointStamped) and "
                        "attention/voice_id (String), stamped with the image stamps")
    p.add_argument("--output-format", choices=("sqlite3", "mcap"), default="sqlite3",
                   help="storage of --output-bag (default sqlite3)")
    p.add_argument("--voices", action="store_true",
                   help="also write each track's voice to --output-bag as "
                        "<tracking.voices_namespace>/<voice id>/audio (AudioStamped, mono "
                        "float32, the bag's audio rate; voices.* parameters, as 'separate')")
    p.add_argument("--no-images", action="store_true",
                   help="leave speakers/image out of --output-bag (much smaller)")
    p.add_argument("--fixed-frame", metavar="FRAME",
                   help="track in FRAME (e.g. base_link or odom; tracking.fixed_frame): the "
                        "camera pose in it is read from the bag's /tf and /tf_static, the "
                        "track file is written in it")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core.attention import AttentionConfig
    from ..core.tf_masks import VoiceConfig
    from ..interrupt import Interrupted
    from ..io.image_msgs import counting_corrupt_images, damaged_frames_warning
    from ..io.params import load_offline_configs
    from ..io.track_output import TrackOutputConfig
    from ..nodes.settings import TrackingNodeConfig
    from ..offline import PROCESS_STAGES, bag_voices, process_bag, progress_printer, summarize
    from ..pipeline import TrackingConfig

    configs = load_offline_configs(args.config, (*PROCESS_STAGES, TrackingNodeConfig,
                                                 VoiceConfig))
    if args.voices and not args.output_bag:
        print("error: --voices writes the voices into --output-bag: give --output-bag DIR "
              "(or use 'av-perception separate' for WAV files)", file=sys.stderr)
        return 2
    if args.voices and (configs[TrackingConfig].fixed_frame or args.fixed_frame):
        print("error: --voices needs the tracks in the camera frame: leave --fixed-frame / "
              "tracking.fixed_frame out", file=sys.stderr)
        return 2
    if args.attention and not configs[AttentionConfig].enabled:
        print("error: --attention asks for the attention file but attention.enabled is false "
              "in the params file: set it true or leave --attention out", file=sys.stderr)
        return 2
    if args.fixed_frame is not None:
        import dataclasses

        configs[TrackingConfig] = dataclasses.replace(configs[TrackingConfig],
                                                      fixed_frame=args.fixed_frame)
    output = Path(args.output)
    bag_writer = None
    on_frame = None
    if args.output_bag:
        from ..io.output_bag import OutputBagWriter

        try:
            labels = configs[TrackOutputConfig]
            bag_writer = OutputBagWriter(args.output_bag, storage=args.output_format,
                                         images=not args.no_images,
                                         speaking_threshold=labels.speaking_threshold,
                                         marker_lifetime=labels.marker_lifetime,
                                         attention=configs[AttentionConfig].enabled,
                                         voice_id_prefix=configs[TrackingNodeConfig]
                                         .voice_id_prefix)
        except (FileExistsError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

        def on_frame(frame, out, header):
            bag_writer.write(out, header.stamp.sec, header.stamp.nanosec,
                             labels.frame_id or header.frame_id,
                             frame.left, frame.calibration)
    corrupt = counting_corrupt_images()
    try:
        with corrupt:
            result = process_bag(
                args.bag, output, configs, start=args.start, duration=args.duration,
                audio_topic=args.audio_topic, left_topic=args.left_topic,
                right_topic=args.right_topic, attention_output=args.attention,
                left_info=args.left_info, right_info=args.right_info, slop=args.slop,
                on_frame=on_frame, progress=None if args.quiet else progress_printer(),
                keep_outputs=args.voices, keep_spectra=args.voices)
        if args.voices:
            try:
                voices = bag_voices(result, configs)
            except ValueError as exc:
                result.errors.append(f"no voices written: {exc}")
                voices = None
            node = configs[TrackingNodeConfig]
            for tid in sorted(voices.voices) if voices is not None else ():
                bag_writer.write_voice(
                    f"{node.voices_namespace}/{node.voice_id_prefix}{tid}/audio",
                    voices.voices[tid], voices.rate, voices.start)
    except Interrupted as exc:
        if bag_writer is not None:
            bag_writer.close()
            counts = ", ".join(f"{n} {t}" for t, n in bag_writer.counts.items())
            exc.kept.append(f"output bag {args.output_bag} ({counts})")
        raise
    finally:
        if bag_writer is not None:
            bag_writer.close()
    if not args.quiet:
        print(file=sys.stderr)
    print(summarize(result, output))
    if args.attention:
        print(f"attention: {result.attention_rows} rows, {result.attention_switches} switches "
              f"-> {args.attention}")
    if bag_writer is not None:
        counts = ", ".join(f"{n} {t}" for t, n in bag_writer.counts.items())
        print(f"output bag {args.output_bag} ({args.output_format}): {counts}")
    errors = list(dict.fromkeys(result.errors))  # the audio and image readers' alike
    bad = damaged_frames_warning(corrupt.count, errors, result.frames)
    if bad:
        errors.insert(0, bad)
    for e in errors[:20]:
        print(f"warning: {e}", file=sys.stderr)
    if len(errors) > 20:
        print(f"warning: {len(errors) - 20} more", file=sys.stderr)
    return 0 if result.frames else 1
