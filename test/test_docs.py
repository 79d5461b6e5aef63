"""The documentation site: generated pages in sync with the code, and a strict build."""
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import require

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import param_docs  # noqa: E402


def _require_node_modules():
    """The nodes declare the parameter sections; importing them needs rclpy."""
    try:
        import rclpy  # noqa: F401
    except ImportError:
        require(False, "rclpy (pip install -e '.[ros]')")


def test_parameter_page_is_up_to_date():
    _require_node_modules()
    page = (ROOT / "docs" / "parameters.md").read_text()
    assert page == param_docs.render(), (
        f"docs/parameters.md is out of date: run {param_docs.REGENERATE}")


def test_parameter_page_has_every_parameter_of_every_node():
    _require_node_modules()
    page = (ROOT / "docs" / "parameters.md").read_text()
    for node in param_docs.NODES:
        assert node in page
        for cls in param_docs.node_stages(node):
            assert f"\n## {cls.SECTION}\n" in page, cls.SECTION
            for spec in cls.parameter_specs():
                assert f"| `{spec.name}` |" in page, spec.name
    # one table per section: a parameter is listed once, however many nodes declare it
    assert page.count("| `mics.left` |") == 1


def test_site_builds_strict(tmp_path):
    """Broken links, anchors and snippet includes fail the build."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or \
        shutil.which("mkdocs")
    require(mkdocs is not None, "mkdocs (pip install -e '.[docs]')")
    out = tmp_path / "site"
    run = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    bench = (out / "benchmarks.html").read_text()
    assert "Weighted-data EM" in bench and "--8&lt;--" not in bench  # BENCHMARKS.md included


def test_no_pointer_to_design_notes_outside_the_repository():
    """The repository documents itself: no file points to notes users do not have."""
    names = ("DESIGN" + ".md", "ALGORITHMS" + ".md")
    paths = [p for d in ("av_perception", "test", "bench", "tools", "launch", "config", "docs")
             for p in (ROOT / d).rglob("*") if p.is_file()]
    paths += [p for p in ROOT.iterdir() if p.is_file()]
    checked = 0
    for path in paths:
        if path.suffix not in (".py", ".md", ".yaml", ".yml", ".xml", ".cfg", ".toml", ".txt"):
            continue
        text = path.read_text(errors="replace")
        checked += 1
        for name in names:
            assert name not in text, f"{path.relative_to(ROOT)} mentions {name}"
    assert checked > 50
