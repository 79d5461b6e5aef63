"""Stage configs: validation messages, YAML loading, registry."""
from pathlib import Path

import pytest

from av_perception.core.config import (
    AudioFrontEndConfig,
    ConfigError,
    MicArrayConfig,
    StageConfig,
)
from av_perception.io.audio_sources import AudioCaptureConfig
from av_perception.io.params import (
    configs_from_params,
    known_sections,
    load_configs,
    load_offline_configs,
    read_params_file,
)
from av_perception.io.track_output import TrackOutputConfig
from av_perception.nodes.settings import AudioOutputConfig, TrackingNodeConfig
from av_perception.pipeline import TrackingConfig

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_registered():
    for cls in (AudioFrontEndConfig, MicArrayConfig, AudioCaptureConfig, AudioOutputConfig):
        cls()
        assert cls in StageConfig.REGISTRY[cls.SECTION]
        for spec in cls.parameter_specs():
            assert spec.description, spec.name


def test_classes_sharing_a_section_declare_disjoint_fields():
    shared = {s: classes for s, classes in known_sections().items() if len(classes) > 1}
    assert set(shared["tracking"]) == {TrackingConfig, TrackOutputConfig, TrackingNodeConfig}
    for section, classes in shared.items():
        names = [n for c in classes for n in c.field_names()]
        assert len(names) == len(set(names)), section


def test_a_shared_section_is_split_between_its_classes():
    params = {"tracking.audio_wait": 0.05, "tracking.publish_markers": False,
              "tracking.speaking_threshold": 0.7}
    both = configs_from_params(params, [TrackingConfig, TrackOutputConfig, TrackingNodeConfig])
    assert both[TrackingConfig].audio_wait == 0.05
    assert both[TrackingNodeConfig].publish_markers is False
    assert both[TrackOutputConfig].speaking_threshold == 0.7
    with pytest.raises(ConfigError, match=r"tracking\.publish_marker\b.*known in section "
                                          r"'tracking'.*publish_markers"):
        configs_from_params({"tracking.publish_marker": True},
                            [TrackingConfig, TrackOutputConfig, TrackingNodeConfig])
    # an offline command wants only some classes of the section: the others' parameters
    # are passed over, a name of no class is still refused
    got = configs_from_params(params, [TrackingConfig], allow_unknown=True)
    assert got[TrackingConfig].audio_wait == 0.05
    with pytest.raises(ConfigError, match=r"tracking\.audio_waits"):
        configs_from_params({"tracking.audio_waits": 0.1}, [TrackingConfig], allow_unknown=True)


@pytest.mark.parametrize("kwargs, words", [
    ({"frame_length": 10}, ["audio.frame_length", "[64, 8192]"]),
    ({"hop_length": 1024}, ["audio.hop_length", "frame_length"]),
    ({"direct_path_weighting": "magic"}, ["audio.direct_path_weighting", "'coherence'"]),
    ({"max_frequency": 9000.0}, ["audio.max_frequency", "processing_rate / 2"]),
    ({"itd_margin": float("nan")}, ["audio.itd_margin", "finite"]),
    ({"frame_length": 512.5}, ["audio.frame_length", "integer"]),
    ({"ild_band_edges": (100.0, 50.0)}, ["audio.ild_band_edges", "increasing"]),
])
def test_bad_values_name_parameter_and_range(kwargs, words):
    with pytest.raises(ConfigError) as err:
        AudioFrontEndConfig(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_mic_and_capture_cross_checks():
    with pytest.raises(ConfigError, match="at least 0.01 m apart"):
        MicArrayConfig(left=(0, 0, 0), right=(0.001, 0, 0))
    with pytest.raises(ConfigError, match="mics.left"):
        MicArrayConfig(left=(0.0, 0.0))
    with pytest.raises(ConfigError, match="capture.channel_right"):
        AudioCaptureConfig(channels=2, channel_right=2)
    with pytest.raises(ConfigError, match="two different channels"):
        AudioCaptureConfig(channel_left=1, channel_right=1)
    assert MicArrayConfig(left=[-0.1, 0, 0], right=[0.1, 0, 0]).spacing == pytest.approx(0.2)


def test_unknown_parameter_is_refused():
    with pytest.raises(ConfigError, match="audio.frame_lenght"):
        configs_from_params({"audio.frame_lenght": 256}, [AudioFrontEndConfig])


def test_yaml_round_trip(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "/**:\n  ros__parameters:\n    mics:\n      left: [-0.09, 0.0, 0.0]\n"
        "audio_features_node:\n  ros__parameters:\n    audio:\n      frame_length: 1024\n"
        "      hop_length: 512\n")
    cfg = load_configs(f, [AudioFrontEndConfig, MicArrayConfig], "audio_features_node")
    assert cfg[AudioFrontEndConfig].frame_length == 1024
    assert cfg[MicArrayConfig].left == (-0.09, 0.0, 0.0)
    # another node's name does not get audio_features_node's section
    assert read_params_file(f, "other_node") == {"mics.left": [-0.09, 0.0, 0.0]}


def test_offline_loader_refuses_typos_but_ignores_other_stages(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("n:\n  ros__parameters:\n    capture:\n      device: pulse\n"
                 "    audio:\n      hop_length: 128\n")
    cfg = load_offline_configs(f, [AudioFrontEndConfig])
    assert cfg[AudioFrontEndConfig].hop_length == 128
    f.write_text("n:\n  ros__parameters:\n    audoi:\n      hop_length: 128\n")
    with pytest.raises(ConfigError, match="audoi.hop_length"):
        load_offline_configs(f, [AudioFrontEndConfig])


def test_bad_yaml_files(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("node:\n  parameters: {}\n")
    with pytest.raises(ConfigError, match="ros__parameters"):
        read_params_file(f)
    f.write_text("node: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_params_file(f)
    with pytest.raises(ConfigError, match="cannot read"):
        read_params_file(tmp_path / "missing.yaml")


def test_shipped_config_files_load():
    files = sorted((ROOT / "config").glob("*.yaml"))
    assert files
    for f in files:
        params = read_params_file(f)
        assert params
        load_offline_configs(f, [AudioFrontEndConfig, MicArrayConfig])


def test_the_detections_and_interest_points_of_a_frame_fit_what_the_pipeline_takes():
    """A frame of the largest allowed detections, interest points and body-cue observations
    is not refused by the fusion and the tracker (pipeline.buffer.MAX_VISUAL_POINTS)."""
    from av_perception.core.body_cue import MAX_BODY_OBSERVATIONS
    from av_perception.core.detection import DetectionConfig
    from av_perception.core.vision import VisionConfig
    from av_perception.pipeline.buffer import MAX_VISUAL_POINTS, check_point_count

    most = {s.name: s.high for c in (DetectionConfig, VisionConfig) for s in c.parameter_specs()}
    n = int(most["detection.max_detections"] + most["vision.max_interest_points"]
            + MAX_BODY_OBSERVATIONS)
    assert n <= MAX_VISUAL_POINTS
    check_point_count(n, "observations")  # accepted
    with pytest.raises(ValueError, match="more than the 256"):
        check_point_count(MAX_VISUAL_POINTS + 1, "observations")
