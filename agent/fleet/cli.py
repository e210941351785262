"""``edge-fleet``: push model bundles to devices over MQTT (the update issue implements it)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge-fleet",
        description="Push signed model bundles to devices over MQTT, watch status, roll out in "
        "stages and roll back. Not implemented yet: only this help is available.",
    )
    parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
