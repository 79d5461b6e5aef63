"""The ``av-perception`` command."""
from __future__ import annotations

import argparse
import importlib
import sys

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


def main(argv=None) -> int:
    from .io.audio_sources import AudioSourceError
    from .io.bag import BagError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, BagError, AudioSourceError) as exc:
        print(f"av-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
