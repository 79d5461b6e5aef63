"""Stage configs: validation messages, YAML loading, registry."""
from pathlib import Path

import pytest

from av_perception.core.config import (
    AudioCaptureConfig,
    AudioFrontEndConfig,
    AudioOutputConfig,
    ConfigError,
    MicArrayConfig,
    StageConfig,
)
from av_perception.io.params import (
    configs_from_params,
    load_configs,
    load_offline_configs,
    read_params_file,
)

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid_and_registered():
    for cls in (AudioFrontEndConfig, MicArrayConfig, AudioCaptureConfig, AudioOutputConfig):
        cls()
        assert StageConfig.REGISTRY[cls.SECTION] is cls
        for spec in cls.parameter_specs():
            assert spec.description, spec.name


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
