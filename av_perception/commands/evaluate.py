"""``av-perception evaluate SCENE TRACKS``: metrics against the simulator's ground truth."""
from __future__ import annotations

__all__ = ["register", "run"]

DESCRIPTION = """\
Score a track file (CSV header stamp,track_id,x,y,z,speaking, as written by
'av-perception process') and/or an audio feature file (t,itd,azimuth,ild,activity,
from 'av-perception audio') against the ground truth of a simulated scene
(the OUTDIR of 'av-perception simulate').  Tracking: MOTA, MOTP, IDF1, ID
switches, false positives, misses (py-motmetrics, 3D distance gate);
localisation error; speaking precision/recall/F1 on matched pairs.  Audio: ITD
and direction errors while exactly one person speaks.  Attention (file of 'process
--attention'): fraction of the speaking time (without the first --reaction s of each
turn) in which the target is a person who speaks, switches between people per turn; the
targets are mapped to people by the track file's matches when it is given too."""


def register(subparsers) -> None:
    """Add the ``evaluate`` sub-command."""
    p = subparsers.add_parser("evaluate", help="metrics of tracks / audio features against "
                                               "simulator ground truth",
                              description=DESCRIPTION)
    p.add_argument("scene", help="simulator output directory (ground_truth.jsonl, scene.json)")
    p.add_argument("results", nargs="+", metavar="TRACKS",
                   help="track CSV, audio feature CSV and/or attention CSV (recognised by "
                        "the header)")
    p.add_argument("--gate", type=float, default=0.5,
                   help="3D matching gate in metres (default: %(default)s)")
    p.add_argument("--gt", dest="gt_mode", choices=("visible", "all"), default="visible",
                   help="ground truth = visible people (tracks on people out of view are "
                        "ignored) or all people (default: %(default)s)")
    p.add_argument("--include-invisible", dest="gt_mode", action="store_const", const="all",
                   help="same as --gt all")
    p.add_argument("--speaking-threshold", type=float, default=0.5,
                   help="track 'speaking' value counted as speaking (default: %(default)s)")
    p.add_argument("--activity-threshold", type=float, default=0.5,
                   help="audio frames with lower activity are not scored (default: %(default)s)")
    p.add_argument("--reaction", type=float, default=0.5,
                   help="seconds at the start of each turn left out of the attention score "
                        "(default: %(default)s)")
    p.add_argument("--json", metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--plot", metavar="PNG", help="plot tracks vs truth over time")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the command from parsed arguments."""
    from ..eval import evaluate_files, format_report, write_json

    results = evaluate_files(args.scene, args.results, gate=args.gate, gt_mode=args.gt_mode,
                             speaking_threshold=args.speaking_threshold,
                             activity_threshold=args.activity_threshold, plot=args.plot,
                             reaction=args.reaction)
    print(format_report(results))
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0
