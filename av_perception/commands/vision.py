"""``av-perception vision BAG --output observations.csv``: the visual front-end alone."""
from __future__ import annotations

import sys

from ..core.config import StereoCameraConfig
from ..core.detection import DetectionConfig
from ..core.lip_activity import LipConfig
from ..core.vision import VisionConfig


def register(sub):
    p = sub.add_parser(
        "vision", help="3D head observations of the stereo images of a bag",
        description="Run the visual front-end over the stereo image pairs of a rosbag2 "
                    "(Image or CompressedImage + CameraInfo, topics detected) and write one "
                    "CSV row per observation: stamp,x,y,z,weight,u,v,w,h (s, m in the left "
                    "camera optical frame, 0-1, rectified left-image pixels).  Warns with the "
                    "count of compressed images that failed to decode or looked corrupt."
                    "  Rows are flushed frame by frame to OUTPUT.partial and renamed to OUTPUT at "
                    "the end, also after an error or SIGINT/SIGTERM/SIGHUP (exit code 128 + "
                    "signal number): what was computed is kept; a run that computed nothing "
                    "leaves an existing OUTPUT as it was.")
    p.add_argument("bag", help="rosbag2 directory (or its .db3/.mcap file)"
                        "; a damaged bag (storage cut short by a crash, no metadata.yaml) "
                        "is read around the damage with a warning (repair it for other tools "
                        "with 'ros2 bag reindex')")
    p.add_argument("--output", "-o", required=True, help="observation CSV to write")
    p.add_argument("--config", help="ROS-params YAML (sections 'vision', 'detection', "
                                     "'vision_input' and 'camera' are used)")
    p.add_argument("--left-topic", help="left image topic (default: detected, e.g. "
                                         "/stereo/left/image_raw[/compressed])")
    p.add_argument("--right-topic", help="right image topic (default: derived from the left)")
    p.add_argument("--left-info", help="left CameraInfo topic (default: detected)")
    p.add_argument("--right-info", help="right CameraInfo topic (default: detected)")
    p.add_argument("--slop", type=float,
                   help="largest left/right stamp difference in s (default: vision_input.slop)")
    p.add_argument("--start", type=float, help="start this many seconds into the bag")
    p.add_argument("--duration", type=float, help="process this many seconds of the bag")
    p.add_argument("--extra-columns", action="store_true",
                   help="also write kind, var_x, var_y, var_z, quality and disparity")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io.bag import BagReader, check_time_window
    from ..io.image_msgs import counting_corrupt_images, damaged_frames_warning
    from ..io.observation_files import ObservationCsvWriter
    from ..io.params import load_offline_configs
    from ..io.stereo_sources import BagStereoSource, VisionInputConfig
    from ..pipeline import VisionPipeline

    cfg = load_offline_configs(args.config, [VisionConfig, DetectionConfig, LipConfig,
                                             VisionInputConfig, StereoCameraConfig])
    inp = cfg[VisionInputConfig]
    slop = inp.slop if args.slop is None else args.slop
    calibration = None if inp.use_camera_info else cfg[StereoCameraConfig]
    if args.start is not None or args.duration is not None:
        with BagReader(args.bag) as reader:
            check_time_window(reader, args.start, args.duration)
    source = BagStereoSource(
        args.bag, args.left_topic, args.right_topic, args.left_info, args.right_info, slop,
        start=args.start, duration=args.duration, calibration=calibration,
        images_rectified=inp.rectified_flag, queue_size=inp.queue_size)
    pipeline = VisionPipeline(cfg[VisionConfig], cfg[DetectionConfig], lips=cfg[LipConfig])
    pipeline.warm_up()
    with source, ObservationCsvWriter(args.output, args.extra_columns) as out, \
            counting_corrupt_images() as corrupt:
        print(f"{args.bag}: {source.topics}")
        result = pipeline.run(source, callback=out.write)
    errors = source.errors + result.errors
    bad = damaged_frames_warning(corrupt.count, errors, result.frames)
    if bad:
        errors.insert(0, bad)
    per = result.observations / result.frames if result.frames else 0.0
    video = f" ({result.video_seconds:.1f} s of video)" if result.frames > 1 else ""
    print(f"{result.frames} frames{video} -> {args.output}; {result.observations} observations "
          f"({per:.2f} per frame); {result.fps:.1f} frames/s "
          f"({1000 * pipeline.mean_processing_time:.0f} ms processing per frame)")
    left, right = source.unpaired
    if left or right:
        print(f"warning: {left} left and {right} right images had no partner within "
              f"{slop} s (--slop)", file=sys.stderr)
    for e in errors[:20]:
        print(f"warning: {e}", file=sys.stderr)
    if len(errors) > 20:
        print(f"warning: {len(errors) - 20} more errors", file=sys.stderr)
    if source.truncated:
        print("warning: the bag is truncated or corrupt; the observations of its readable part "
              "were written", file=sys.stderr)
    if result.frames == 0:
        print("error: no usable stereo frame in the bag" + (" (see the warnings above)"
                                                            if errors else ""), file=sys.stderr)
        return 1
    return 0
