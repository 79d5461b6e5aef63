"""Package layout: ament_python files, launch files, config files, colcon build."""
import ast
import os
import runpy
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

import pytest
from conftest import require

from av_perception.io.params import read_params_file

ROOT = Path(__file__).resolve().parents[1]

#: node executable -> (module, stage config classes it declares)
NODES = {
    "audio_features_node": "av_perception.nodes.audio_features_node",
    "visual_features_node": "av_perception.nodes.visual_features_node",
    "av_fusion_node": "av_perception.nodes.av_fusion_node",
    "tracker_node": "av_perception.nodes.tracker_node",
    "perception_node": "av_perception.nodes.perception_node",
    "gaze_controller_node": "av_perception.nodes.gaze_controller_node",
}


def _setup_kwargs():
    captured = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with mock.patch("setuptools.setup", lambda **kw: captured.update(kw)):
            runpy.run_path(str(ROOT / "setup.py"))
    finally:
        os.chdir(cwd)
    return captured


def _console_scripts():
    scripts = _setup_kwargs()["entry_points"]["console_scripts"]
    return dict(s.replace(" ", "").split("=", 1) for s in scripts)


def _declared(executable):
    import importlib

    mod = importlib.import_module(NODES[executable])
    # use_sim_time: declared by rclpy itself on every node
    return {spec.name for cls in mod.STAGES for spec in cls.parameter_specs()} | {"use_sim_time"}


def test_package_xml_is_format3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "av_perception"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "diagnostic_msgs", "std_msgs"} <= deps
    assert (ROOT / "resource" / "av_perception").exists()


def test_setup_installs_every_share_file_and_node():
    kw = _setup_kwargs()
    installed = {f for _, files in kw["data_files"] for f in files}
    for folder in ("launch", "config", "rviz"):
        for f in (ROOT / folder).glob("*") if (ROOT / folder).exists() else []:
            assert f"{folder}/{f.name}" in installed, f
    assert "resource/av_perception" in installed and "package.xml" in installed
    scripts = _console_scripts()
    assert scripts["av-perception"] == "av_perception.cli:main"
    for exe, module in NODES.items():
        assert scripts[exe] == f"{module}:main"
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/av_perception" in cfg
    assert "install_scripts=$base/lib/av_perception" in cfg


def _launch_files():
    return sorted((ROOT / "launch").glob("*.launch.*"))


def test_xml_launch_files_parse_and_reference_real_things():
    scripts = _console_scripts()
    xml_files = [f for f in _launch_files() if f.suffix == ".xml"]
    assert xml_files
    for f in xml_files:
        root = ET.parse(f).getroot()
        assert root.tag == "launch"
        for node in root.iter("node"):
            exe = node.get("exec")
            assert node.get("pkg") == "av_perception" and exe in scripts, (f, exe)
            declared = _declared(exe)
            for p in node.iter("param"):
                if p.get("name"):
                    assert p.get("name") in declared, (f, p.get("name"))
        for arg in root.iter("arg"):
            default = arg.get("default", "")
            if "/config/" in default:
                assert (ROOT / "config" / default.rsplit("/", 1)[1]).exists(), default


def test_python_launch_files_compile_and_reference_real_things():
    scripts = _console_scripts()
    py_files = [f for f in _launch_files() if f.suffix == ".py"]
    assert py_files
    for f in py_files:
        tree = ast.parse(f.read_text(), filename=str(f))
        compile(tree, str(f), "exec")
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "generate_launch_description" in names
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Node"):
                continue
            kw = {k.arg: k.value for k in call.keywords}
            exe = ast.literal_eval(kw["executable"])
            assert ast.literal_eval(kw["package"]) == "av_perception" and exe in scripts
            declared = _declared(exe)
            for d in ast.walk(kw["parameters"]):
                if isinstance(d, ast.Dict):
                    for key in d.keys:
                        assert ast.literal_eval(key) in declared, (f, ast.literal_eval(key))
        for const in ast.walk(tree):
            if isinstance(const, ast.Constant) and str(const.value).endswith(".yaml"):
                assert (ROOT / "config" / const.value).exists(), const.value


def test_every_yaml_parameter_is_declared_by_its_node():
    for f in sorted((ROOT / "config").glob("*.yaml")):
        import yaml

        doc = yaml.safe_load(f.read_text())
        for node_name in doc:
            name = node_name.lstrip("/")
            if name == "**":
                continue
            assert name in NODES, f"{f.name}: no node called {name}"
            params = read_params_file(f, name)
            undeclared = set(params) - _declared(name) - {"use_sim_time"}
            assert not undeclared, (f.name, undeclared)


def test_profiles_shared_parameters_belong_to_known_stage_sections():
    """Hardware profiles: every ``/**`` parameter is a parameter of a known stage section
    (so each node that declares that section gets it), and the offline commands read them."""
    import yaml

    from av_perception.core.config import MicArrayConfig
    from av_perception.io.params import flatten, known_sections, load_offline_configs
    from av_perception.offline import PROCESS_STAGES

    known = {spec.name for classes in known_sections().values() for cls in classes
             for spec in cls.parameter_specs()}
    profiles = sorted((ROOT / "config").glob("profile_*.yaml"))
    assert {p.name for p in profiles} >= {"profile_two_mic_bar.yaml", "profile_dummy_head.yaml"}
    for f in profiles:
        doc = yaml.safe_load(f.read_text())
        shared = flatten(doc["/**"]["ros__parameters"])
        assert shared, f.name
        unknown = set(shared) - known
        assert not unknown, (f.name, unknown)
        for name in shared:  # each shared parameter reaches at least one node
            assert any(name in _declared(exe) for exe in NODES), (f.name, name)
        load_offline_configs(f, PROCESS_STAGES)  # the offline commands accept the profile
    bar = load_offline_configs(ROOT / "config" / "profile_two_mic_bar.yaml", [MicArrayConfig])
    assert bar[MicArrayConfig].left == (-0.075, 0.0, 0.0)
    assert bar[MicArrayConfig].right == (0.075, 0.0, 0.0)
    head = load_offline_configs(ROOT / "config" / "profile_dummy_head.yaml", [MicArrayConfig])
    assert head[MicArrayConfig].left == (-0.09, 0.05, -0.03)
    assert head[MicArrayConfig].right == (0.09, 0.05, -0.03)


def test_launch_files_come_in_python_and_xml_pairs():
    stems = {f.name.rsplit(".launch.", 1)[0] for f in _launch_files()}
    assert {"robot", "replay"} <= stems
    for stem in stems:
        assert (ROOT / "launch" / f"{stem}.launch.py").exists(), stem
        assert (ROOT / "launch" / f"{stem}.launch.xml").exists(), stem


@pytest.mark.slow
def test_colcon_build_in_a_workspace(tmp_path):
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    require(Path(colcon).exists(), "colcon (pip install colcon-common-extensions)")
    ws = tmp_path / "ws"
    src = ws / "src" / "av_perception"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "install", "log", "*.egg-info", "__pycache__", "demo_output",
        ".pytest_cache"))
    out = subprocess.run([colcon, "build", "--event-handlers", "console_direct-"], cwd=ws,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    prefix = ws / "install" / "av_perception"
    for exe in ["av-perception", *NODES]:
        assert (prefix / "lib" / "av_perception" / exe).exists(), exe
    share = prefix / "share" / "av_perception"
    assert (share / "package.xml").exists()
    for f in _launch_files():
        assert (share / "launch" / f.name).exists()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages"
            / "av_perception").exists()

