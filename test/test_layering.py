"""The layers of docs/architecture.md: core is pure, optional libraries load lazily."""
import subprocess
import sys
from pathlib import Path

import av_perception

PKG = Path(av_perception.__file__).parent


def _modules_after_import(stmt: str) -> set:
    code = f"import sys; {stmt}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def _core_modules() -> list:
    """Dotted names below av_perception.core of every module of core and its packages."""
    core = PKG / "core"
    return sorted(".".join(p.relative_to(core).with_suffix("").parts)
                  for p in core.rglob("*.py") if p.stem != "__init__")


def test_core_never_imports_rclpy_or_devices():
    core_modules = _core_modules()
    assert "audio" in core_modules and "geometry" in core_modules
    assert "tracking.tracker" in core_modules
    stmt = "; ".join(f"import av_perception.core.{m}" for m in core_modules)
    mods = _modules_after_import(stmt)
    for forbidden in ("rclpy", "sounddevice", "rosbags", "cv_bridge", "matplotlib"):
        assert not any(m == forbidden or m.startswith(forbidden + ".") for m in mods), forbidden


def test_core_source_has_no_ros_or_file_io():
    for path in (PKG / "core").rglob("*.py"):
        text = path.read_text()
        assert "import rclpy" not in text and "from rclpy" not in text, path
        assert "open(" not in text, f"{path} does file I/O; core must stay pure"


def test_io_and_cli_do_not_import_sounddevice_eagerly():
    mods = _modules_after_import(
        "import av_perception.io.audio_sources, av_perception.io.audio_msgs, av_perception.cli")
    assert "sounddevice" not in mods
    assert "rclpy" not in mods
