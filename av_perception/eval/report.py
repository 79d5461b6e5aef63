"""Readable and JSON reports of the evaluation results."""
from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["format_report", "write_json", "to_jsonable"]


def to_jsonable(obj):
    """Replace NaN/inf by None (JSON null) and numpy scalars by Python numbers."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(results: dict, path) -> None:
    """Write the results as indented JSON (NaN -> null)."""
    Path(path).write_text(json.dumps(to_jsonable(results), indent=2) + "\n")


def _f(v, fmt="{:.3f}"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return fmt.format(v)


def format_report(results: dict) -> str:
    """A plain-text table of whatever sections ``results`` holds
    ('tracking', 'localisation', 'speaking', 'attention', 'audio')."""
    lines = []
    if "tracking" in results:
        t = results["tracking"]
        c = results.get("config", {})
        lines += [
            f"Tracking  (ground truth: {c.get('gt_mode', '?')} people, gate "
            f"{_f(c.get('gate'), '{:.2f}')} m, {c.get('frames', '?')} frames, "
            f"{c.get('track_rows', '?')} track rows)",
            f"  MOTA {_f(t['mota'])}   MOTP {_f(t['motp'])} m   IDF1 {_f(t['idf1'])}   "
            f"(IDP {_f(t['idp'])}, IDR {_f(t['idr'])})",
            f"  ID switches {t['num_switches']}   false positives {t['num_false_positives']}   "
            f"misses {t['num_misses']}   (objects {t['num_objects']}, predictions "
            f"{t['num_predictions']}, matches {t['num_matches']})",
            f"  precision {_f(t['precision'])}   recall {_f(t['recall'])}   "
            f"mostly tracked/partially/lost {t['mostly_tracked']}/{t['partially_tracked']}/"
            f"{t['mostly_lost']} of {t['num_unique_objects']}   fragmentations "
            f"{t['num_fragmentations']}",
        ]
        if t.get("ignored_rows") or t.get("rows_outside_frames"):
            lines.append(f"  track rows ignored (on people out of view): {t['ignored_rows']}; "
                         f"rows at no frame stamp: {t['rows_outside_frames']}")
    if "localisation" in results:
        lo = results["localisation"]
        if lo.get("n"):
            lines.append(
                f"Localisation on {lo['n']} matches (m): mean {_f(lo['mean'])}  median "
                f"{_f(lo['median'])}  p90 {_f(lo['p90'])}  |dx| {_f(lo['mean_abs_x'])}  "
                f"|dy| {_f(lo['mean_abs_y'])}  |dz| {_f(lo['mean_abs_z'])}  "
                f"z bias {_f(lo['bias_z'], '{:+.3f}')}")
        else:
            lines.append("Localisation: no matches")
    if "speaking" in results:
        s = results["speaking"]
        thr = results.get("config", {}).get("speaking_threshold", 0.5)
        lines.append(
            f"Speaking on matched pairs (threshold {thr}): precision {_f(s['precision'])}  "
            f"recall {_f(s['recall'])}  F1 {_f(s['f1'])}  accuracy {_f(s.get('accuracy'))}  "
            f"(tp {s['tp']} fp {s['fp']} fn {s['fn']} tn {s.get('tn', 'n/a')}); detected "
            f"{_f(s['detection_rate'])} of {s['gt_speaking_instances']} speaking instances")
    if "attention" in results:
        a = results["attention"]
        lines.append(
            f"Attention ({a['rows']} rows; {a['scored_frames']} speaking frames scored, the "
            f"first {a['reaction']:g} s of each turn left out): on the speaker "
            f"{_f(a['on_speaker'])}  no target {_f(a['no_target'])}  switches "
            f"{a['switches']} in {a['turns']} turns ({_f(a['switches_per_turn'], '{:.2f}')} "
            f"per turn, at most {a['max_switches_in_turn']} in one, "
            f"{a['turns_with_extra_switches']} turns with more than one)  target id changes "
            f"{a['target_changes']}")
    if "audio" in results:
        a = results["audio"]
        lines.append(
            f"Audio ITD/DOA  ({a['scored_frames']} scored frames: one talker, activity >= "
            f"{a['activity_threshold']}; {a['single_speaker_frames']} single-talker frames of "
            f"{a['frames']})")
        if "itd_error_us" in a:
            e, d = a["itd_error_us"], a["doa_error_deg"]
            lines += [
                f"  ITD error (us): median |e| {_f(e['median_abs'], '{:.1f}')}  mean |e| "
                f"{_f(e['mean_abs'], '{:.1f}')}  rmse {_f(e['rmse'], '{:.1f}')}  bias "
                f"{_f(e['bias'], '{:+.1f}')}  p90 {_f(e['p90_abs'], '{:.1f}')}",
                f"  DOA error (deg): median {_f(d['median_abs'], '{:.1f}')}  mean "
                f"{_f(d['mean_abs'], '{:.1f}')}  within 5 deg {100 * d['within_5deg']:.0f} %  "
                f"within 10 deg {100 * d['within_10deg']:.0f} %",
            ]
            for pid, p in a.get("per_speaker", {}).items():
                lines.append(f"    person {pid}: {p['frames']} frames, ITD median |e| "
                             f"{p['itd_median_abs_us']:.1f} us, DOA median "
                             f"{p['doa_median_abs_deg']:.1f} deg")
    return "\n".join(lines)
