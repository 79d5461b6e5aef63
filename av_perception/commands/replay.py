"""``av-perception replay BAG``: publish a recording to ROS and run the pipeline live."""
from __future__ import annotations

import sys


def register(sub):
    p = sub.add_parser(
        "replay", help="publish a rosbag2's stereo images (and audio features) to ROS and run "
                       "the pipeline live, so RViz shows the tracks while the bag plays",
        description="Publishes the bag's stereo pair on stereo/{left,right}/image_raw"
                    "[/compressed] + camera_info with the bag's stamps, paced by the bag's "
                    "timing / rate, /clock (bag time), and audio/features (the binaural "
                    "front-end over the bag's audio, at the time each frame is recorded); "
                    "visual_features_node and tracker_node run in the same process (use_sim_time) "
                    "and publish speakers, speakers/markers and speakers/image.  With "
                    "--no-pipeline only the inputs are published (see launch/replay.launch.py).")
    p.add_argument("bag", help="rosbag2 directory (sqlite3 or mcap)")
    p.add_argument("--rate", "-r", type=float, default=1.0,
                   help="playback speed factor (default 1: real time)")
    p.add_argument("--loop", "-l", action="store_true",
                   help="play again and again (stamps keep increasing by the bag's length)")
    p.add_argument("--namespace", "-n", default="",
                   help="ROS namespace of every published topic (except /clock, /diagnostics)")
    p.add_argument("--config", help="ROS params file for the nodes and the audio front-end")
    p.add_argument("--no-pipeline", action="store_true",
                   help="publish only the inputs (images, camera_info, audio/features, /clock)")
    p.add_argument("--delay", type=float, default=1.0,
                   help="seconds to wait before playing (lets subscribers connect; default 1)")
    p.add_argument("--linger", type=float, default=2.0,
                   help="seconds to keep running after the last message (default 2)")
    p.add_argument("--frame-id", default="",
                   help="frame_id of audio/features (default: the left image's)")
    p.add_argument("--fixed-frame", default="", metavar="FRAME",
                   help="the tracker works in FRAME (tracking.fixed_frame): the bag's /tf and "
                        "/tf_static are published and the tracker reads the camera pose "
                        "from them")
    p.add_argument("--gaze", action="store_true",
                   help="also run gaze_controller_node: a simulated pan/tilt head turning "
                        "towards the attention target (gaze/joint_states, /tf gaze_neck -> "
                        "gaze_head; gaze.* parameters from --config)")
    p.add_argument("--audio-topic", help="audio topic (detected when there is only one)")
    p.add_argument("--left-topic", help="left image topic (detected by default)")
    p.add_argument("--right-topic", help="right image topic")
    p.add_argument("--left-info", help="left camera_info topic")
    p.add_argument("--right-info", help="right camera_info topic")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io.bag import BagError

    try:
        from ..nodes.replay import ReplayOptions, replay
    except ImportError as exc:
        print(f"error: replay needs ROS 2 rclpy ({exc}); pip install -e '.[ros]' or source a "
              "ROS 2 installation", file=sys.stderr)
        return 2
    if not args.rate > 0:
        print(f"error: --rate must be > 0, got {args.rate}", file=sys.stderr)
        return 2
    opts = ReplayOptions(
        bag=args.bag, rate=args.rate, loop=args.loop, namespace=args.namespace,
        config=args.config, pipeline=not args.no_pipeline, delay=max(args.delay, 0.0),
        linger=max(args.linger, 0.0), frame_id=args.frame_id, audio_topic=args.audio_topic,
        left_topic=args.left_topic, right_topic=args.right_topic, left_info=args.left_info,
        right_info=args.right_info, fixed_frame=args.fixed_frame, gaze=args.gaze)
    try:
        return replay(opts, log=lambda s: print(s, file=sys.stderr, flush=True))
    except BagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
