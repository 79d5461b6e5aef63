"""Run every benchmark (``make bench``); each writes its markdown table to bench/results/."""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

BENCHMARKS = sorted(p for p in HERE.glob("bench_*.py"))

if __name__ == "__main__":
    failed = []
    for path in BENCHMARKS:
        print(f"=== {path.name}", flush=True)
        if subprocess.run([sys.executable, str(path)]).returncode:
            failed.append(path.name)
    if failed:
        print("failed:", ", ".join(failed))
        sys.exit(1)
