"""Write (or check) the parameter tables of README.md from the stage dataclasses.

    .venv/bin/python tools/param_docs.py          # rewrite the tables in README.md
    .venv/bin/python tools/param_docs.py --check  # exit 1 if README.md is out of date

Tables live between ``<!-- params:NODE -->`` and ``<!-- /params:NODE -->`` markers,
one per node executable; NODE is the module name under av_perception.nodes.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '""' if v == "" else v
    if isinstance(v, tuple):
        return "[" + ", ".join(f"{x:g}" for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def table(node: str) -> str:
    mod = importlib.import_module(f"av_perception.nodes.{node}")
    rows = ["| parameter | default | allowed | meaning |", "|---|---|---|---|"]
    for cls in mod.STAGES:
        for s in cls.parameter_specs():
            if s.choices:
                allowed = ", ".join(s.choices)
            elif s.low is not None and s.high is not None:
                allowed = f"[{s.low:g}, {s.high:g}]"
            else:
                allowed = ""
            rows.append(f"| `{s.name}` | `{_fmt(s.default)}` | {allowed} | "
                        f"{s.description.replace('|', '/')} |")
    return "\n".join(rows)


def render(text: str) -> str:
    def repl(m):
        node = m.group(1)
        return f"<!-- params:{node} -->\n{table(node)}\n<!-- /params:{node} -->"

    return re.sub(r"<!-- params:(\w+) -->.*?<!-- /params:\1 -->", repl, text, flags=re.S)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = README.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md parameter tables are out of date: run tools/param_docs.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
