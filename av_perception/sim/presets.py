"""Preset scenes, from easy to hard.

:func:`make_scene` builds a fully resolved :class:`~av_perception.sim.scene.Scene` from a
preset name and a seed; :func:`preset_names` and :func:`describe_presets` list them.  All
presets use a 6 x 5 x 3 m room; the presets' table: docs/simulation.md, "Presets".
"""
from __future__ import annotations

import numpy as np

from .scene import (
    DUMMY_HEAD_EARS,
    AudioSpec,
    DistractorSpec,
    NoiseSpec,
    PersonSpec,
    RobotSpec,
    RoomSpec,
    Scene,
    SpeechSpec,
    VideoSpec,
)
from .schedule import double_talk as double_talk_schedule
from .schedule import turn_away_intervals, turn_taking
from .trajectory import still, walk
from .voice import VoiceSpec

__all__ = ["PRESETS", "make_scene", "preset_names", "describe_presets"]

WOMAN_A = VoiceSpec(f0=205.0, formant_scale=1.15, syllable_rate=4.6)
WOMAN_B = VoiceSpec(f0=180.0, formant_scale=1.12, syllable_rate=4.0, level_db=-1.0)
MAN_A = VoiceSpec(f0=112.0, formant_scale=1.0, syllable_rate=4.3, level_db=1.0)
MAN_B = VoiceSpec(f0=135.0, formant_scale=0.97, syllable_rate=5.0)


def _rng(seed: int, name: str):
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF,
                                                         sum(map(ord, name))]))


def _single_static_anechoic(seed, duration):
    people = [PersonSpec(1, still((0.45, -0.35, 2.0)), "astronaut", WOMAN_A, (150, 90, 40))]
    talk = {1: 1.0}
    utt = turn_taking(talk, duration, _rng(seed, "single_static_anechoic"), turn=(1.5, 3.0),
                      pause=(0.4, 0.9))
    return dict(room=RoomSpec(rt60=0.0), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=30.0), video=VideoSpec(noise_std=1.5),
                description="one still talker in an anechoic room")


def _two_static(seed, duration):
    people = [
        PersonSpec(1, still((-0.6, -0.38, 2.2)), "astronaut", WOMAN_A, (150, 90, 40)),
        PersonSpec(2, still((0.7, -0.3, 2.7)), "lfw:3", MAN_A, (40, 120, 60)),
    ]
    talk = {1: 1.0, 2: 1.0}
    utt = turn_taking(talk, duration, _rng(seed, "two_static"))
    return dict(room=RoomSpec(rt60=0.3), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=20.0), description="two still talkers taking turns")


def _default(seed, duration):
    people = [
        PersonSpec(1, still((-0.9, -0.4, 2.4)), "astronaut", WOMAN_A, (150, 90, 40), sway=0.015),
        PersonSpec(2, walk([(0.3, -0.42, 3.2), (0.6, -0.42, 2.2)], speed=0.3, start=3.0),
                   "lfw:3", MAN_A, (40, 120, 60), sway=0.01),
        PersonSpec(3, still((1.1, 0.0, 2.0)), "hopper", WOMAN_B, (90, 50, 120), sway=0.01),
    ]
    talk = {1: 1.0, 2: 1.0, 3: 0.4}
    utt = turn_taking(talk, duration, _rng(seed, "default"), overlap_prob=0.25)
    return dict(room=RoomSpec(rt60=0.4), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=15.0),
                description="three people: turns with overlaps, one walks closer, one seated")


def _moving(seed, duration):
    people = [
        PersonSpec(1, walk([(-1.6, -0.4, 2.6), (1.4, -0.4, 2.6)], speed=0.45, start=1.5),
                   "astronaut", WOMAN_A, (150, 90, 40), sway=0.01),
        PersonSpec(2, still((0.1, -0.38, 1.8)), "lfw:3", MAN_A, (40, 120, 60), sway=0.015),
        PersonSpec(3, walk([(2.0, -0.4, 2.0), (0.9, -0.4, 2.9)], speed=0.4, start=6.0),
                   "lfw:10", MAN_B, (30, 30, 160), sway=0.01),
    ]
    talk = {1: 1.0, 2: 1.0, 3: 0.0}
    utt = turn_taking(talk, duration, _rng(seed, "moving"), overlap_prob=0.1)
    return dict(room=RoomSpec(rt60=0.4), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=15.0),
                description="a talker walks across behind another; a silent person enters the "
                            "view from the right")


def _hard(seed, duration):
    people = [
        PersonSpec(1, walk([(-1.2, -0.4, 2.2), (0.6, -0.4, 3.0), (-0.8, -0.4, 3.2)], speed=0.5,
                           start=1.0, pauses=[2.0]), "astronaut", WOMAN_A, (150, 90, 40),
                   sway=0.01),
        PersonSpec(2, walk([(0.5, -0.42, 3.5), (0.2, -0.42, 1.5)], speed=0.35, start=4.0),
                   "lfw:3", MAN_A, (40, 120, 60), sway=0.01),
        PersonSpec(3, walk([(-2.1, -0.38, 1.6), (-2.0, -0.38, 2.0)], speed=0.1, start=2.0),
                   "hopper", WOMAN_B, (90, 50, 120), sway=0.01),
        PersonSpec(4, walk([(1.6, -0.45, 1.6), (-1.5, -0.45, 1.6)], speed=0.5, start=7.0),
                   "lfw:10", MAN_B, (30, 30, 160), sway=0.01),
    ]
    talk = {1: 1.0, 2: 1.0, 3: 0.8, 4: 0.5}
    utt = turn_taking(talk, duration, _rng(seed, "hard"), overlap_prob=0.4, pause=(0.15, 0.6))
    return dict(room=RoomSpec(rt60=0.6), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=5.0),
                distractors=[DistractorSpec("fan", (2.0, 0.9, 4.0), level_db=-12.0),
                             DistractorSpec("radio", (-1.8, 0.2, 4.2), level_db=-10.0,
                                            start=3.0)],
                video=VideoSpec(noise_std=4.0, blur_sigma=0.8,
                                lighting=[[0.0, 1.0], [8.0, 1.0], [10.0, 0.55], [14.0, 0.55],
                                          [16.0, 1.0]]),
                description="four moving people with overlapping speech, one talker out of "
                            "view, a fan and a radio, dimming light, blur, SNR 5 dB")


#: the seated person near the robot and the standing person behind on (nearly) its bearing:
#: the same angle to the microphone axis (x / r = 0.1957, one ITD) and a bearing
#: atan2(x, z) of 11.3 and 11.4 degrees; the faces 8.6 degrees apart vertically
NEAR_SEATED = (0.3, 0.1, 1.5)
FAR_STANDING = (0.6046, -0.42, 3.0)


def _one_bearing(seed, duration):
    people = [
        PersonSpec(1, still(NEAR_SEATED), "hopper", WOMAN_B, (90, 50, 120), sway=0.01),
        PersonSpec(2, still(FAR_STANDING), "lfw:3", MAN_A, (40, 120, 60), sway=0.01),
    ]
    talk = {1: 1.0, 2: 1.0}
    utt = turn_taking(talk, duration, _rng(seed, "one_bearing"), turn=(1.2, 3.0))
    return dict(room=RoomSpec(rt60=0.4), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=15.0),
                description="two people on one bearing (11 deg): one seated at 1.5 m, one "
                            "standing behind at 3.1 m, taking turns")


def _one_bearing_three(seed, duration):
    people = [
        PersonSpec(1, still(NEAR_SEATED), "hopper", WOMAN_B, (90, 50, 120), sway=0.01),
        PersonSpec(2, still(FAR_STANDING), "lfw:3", MAN_A, (40, 120, 60), sway=0.01),
        PersonSpec(3, still((-0.9, -0.4, 2.4)), "astronaut", WOMAN_A, (150, 90, 40),
                   sway=0.015),
    ]
    talk = {1: 1.0, 2: 1.0, 3: 1.0}
    utt = turn_taking(talk, duration, _rng(seed, "one_bearing_three"), turn=(1.2, 3.0))
    return dict(room=RoomSpec(rt60=0.4), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=15.0),
                description="three people taking turns, two of them on one bearing (seated "
                            "at 1.5 m, standing behind at 3.1 m), one at -21 deg")


def _double_talk(seed, duration):
    people = [
        PersonSpec(1, still((-0.9, -0.4, 2.4)), "astronaut", WOMAN_A, (150, 90, 40),
                   sway=0.015),
        PersonSpec(2, still((0.6, -0.42, 2.6)), "lfw:3", MAN_A, (40, 120, 60), sway=0.01),
        PersonSpec(3, still((1.1, 0.0, 2.0)), "hopper", WOMAN_B, (90, 50, 120), sway=0.01),
    ]
    talk = {1: 1.0, 2: 1.0, 3: 0.7}
    utt = double_talk_schedule(talk, duration, _rng(seed, "double_talk"))
    return dict(room=RoomSpec(rt60=0.4), people=people, utterances=utt, talkativeness=talk,
                noise=NoiseSpec(snr_db=15.0),
                description="three still people; every next talker starts 30-80 % into "
                            "the current turn (double talk)")


#: name -> (builder, default duration in s)
PRESETS = {
    "single_static_anechoic": (_single_static_anechoic, 8.0),
    "two_static": (_two_static, 10.0),
    "default": (_default, 15.0),
    "moving": (_moving, 15.0),
    "hard": (_hard, 20.0),
    "one_bearing": (_one_bearing, 15.0),
    "one_bearing_three": (_one_bearing_three, 15.0),
    "double_talk": (_double_talk, 15.0),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def describe_presets() -> str:
    """One line per preset: name, default duration, description."""
    lines = []
    for name, (build, dur) in PRESETS.items():
        d = build(0, dur)
        r = d["room"]
        snr = d["noise"].snr_db
        lines.append(f"{name:24s} {dur:4.0f} s  {len(d['people'])} people  RT60 {r.rt60:.1f} s  "
                     f"SNR {snr:.0f} dB  {d['description']}")
    return "\n".join(lines)


def make_scene(preset: str = "default", seed: int = 0, duration: float | None = None, *,
               rate: int | None = None, fps: float | None = None, snr_db: float | None = None,
               rt60: float | None = None, speech: SpeechSpec | None = None,
               head: str = "free_field", head_motion=None, double_talk: bool = False,
               turn_away: bool = False) -> Scene:
    """A preset scene.

    Parameters
    ----------
    preset : str
        One of :data:`PRESETS`.
    seed : int
        Seed of the schedule and of every random signal.
    duration : float, optional
        Scene length in s (default: the preset's).
    rate, fps, snr_db, rt60 : optional
        Override the audio rate (Hz), video rate, noise SNR (dB) and RT60 (s).
    speech : SpeechSpec, optional
        Where the speech comes from (default: the built-in voice model).
    head : str
        'free_field' (the default 15 cm mic bar) or 'kemar' (the KEMAR dummy head, ears
        at the dummy-head profile's positions, ``scene.DUMMY_HEAD_EARS``).
    head_motion : HeadMotionSpec, optional
        A head that pans and tilts (default: still); a moving head also recomputes the
        room responses every 0.05 s (audio.segment) so that the ITDs follow it.
    double_talk : bool
        Replace the preset's turns by a double-talk schedule over the same talkers
        (:func:`~av_perception.sim.schedule.double_talk`: every next talker starts
        30-80 % into the current turn).
    turn_away : bool
        Every person turns their head away from the camera once or twice for 1-3 s
        (:func:`~av_perception.sim.schedule.turn_away_intervals`; the back of the head
        is drawn, the ground truth is unchanged).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    build, default_duration = PRESETS[preset]
    duration = float(default_duration if duration is None else duration)
    parts = build(seed, duration)
    talk = parts.pop("talkativeness")
    if double_talk:
        parts["utterances"] = double_talk_schedule(talk, duration,
                                                   _rng(seed, preset + "/double_talk"))
    if turn_away:
        rng = _rng(seed, preset + "/turn_away")
        for p in parts["people"]:
            p.turn_away = turn_away_intervals(duration, rng)
            PersonSpec.__post_init__(p)
    if rt60 is not None:
        parts["room"].rt60 = float(rt60)
        RoomSpec.__post_init__(parts["room"])
    if snr_db is not None:
        parts["noise"].snr_db = float(snr_db)
        NoiseSpec.__post_init__(parts["noise"])
    robot = RobotSpec(head=head)
    if head == "kemar":
        # the scene's mics describe what really hears: the measured KEMAR table
        robot.mics = robot.mics.replace(left=DUMMY_HEAD_EARS[0], right=DUMMY_HEAD_EARS[1],
                                        head_model="measured", measured_table="kemar")
    if fps is not None:
        robot.camera = robot.camera.replace(fps=float(fps))
    audio = AudioSpec(rate=int(rate)) if rate is not None else AudioSpec()
    extra = {}
    if head_motion is not None and head_motion.moving:
        audio.segment = 0.05
        extra["head_motion"] = head_motion
    return Scene(name=preset, duration=duration, seed=int(seed), robot=robot, audio=audio,
                 speech=speech or SpeechSpec(), **parts, **extra)
