"""The ``av-perception`` command."""
from __future__ import annotations

import argparse
import importlib
import sys
import time

from .commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="av-perception",
        description="Audio-visual social perception for a robot head: who is where, "
                    "and who is speaking.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _kept_outputs(args, started: float) -> list[str]:
    """What an interrupted command leaves: its CSV output with its row count (when this
    run wrote it; an older file left as it was is said so)."""
    from pathlib import Path

    kept = []
    out = getattr(args, "output", None)
    if out and Path(out).is_file():
        try:
            if Path(out).stat().st_mtime < started - 1.0:
                return [f"the existing {out} was left as it was (no frame had been computed)"]
            with open(out, "rb") as fh:
                rows = max(sum(1 for _ in fh) - 1, 0)
            kept.append(f"{rows} rows in {out}")
        except OSError:
            pass
    return kept


def main(argv=None) -> int:
    """Run a command.  Exit codes: 0 done (warnings on stderr), 1 nothing could be
    computed, 2 bad input or usage, 128 + signal number when stopped by SIGINT (130),
    SIGTERM (143) or SIGHUP (129) -- everything computed before the signal is kept."""
    from .interrupt import Interrupted, handle_signals
    from .io.audio_sources import AudioSourceError
    from .io.bag import BagError
    from .long_lived import long_lived_frozen

    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.time()
    try:
        # the modules imported so far out of the collector's full passes; run as the
        # program (argv None), until the exit (the exit's collections skip them too)
        with handle_signals(), long_lived_frozen(keep=argv is None):
            return int(args.func(args) or 0)
    except Interrupted as exc:
        kept = _kept_outputs(args, started) + exc.kept
        print(f"\nav-perception {args.command}: interrupted by {exc.signal_name}; "
              + (f"kept what was computed before it: {'; '.join(kept)}" if kept
                 else "nothing had been written yet"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, BagError, AudioSourceError) as exc:
        print(f"av-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
