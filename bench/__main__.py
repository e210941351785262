"""Run benchmarks and rewrite their sections of ``docs/benchmarks.md``: ``make bench``.

    python -m bench                 # every bench/bench_*.py, in name order
    python -m bench agent bundle    # only these (``make bench BENCH="agent bundle"``)
    python -m bench --no-write mqtt # print only

Each module's ``main([])`` ends with ``report(result)`` (bench/report.py); the document is
rewritten after every benchmark, so a later failure keeps the sections already measured.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

from bench.report import DOC, take_reported, write_document

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return [path.stem.removeprefix("bench_") for path in sorted(HERE.glob("bench_*.py"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {available()})")
    parser.add_argument("--no-write", action="store_true", help="do not touch the document")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"no such benchmark {unknown}; choose from {available()}")
    status = 0
    for name in names:
        print(f"== bench_{name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        try:
            code = int(module.main([]) or 0)
        except Exception:  # one broken benchmark must not cost the others' figures
            traceback.print_exc()
            code = 1
        status = status or code
        results = take_reported()
        if results and not args.no_write:
            write_document(results, args.doc)
            print(f"== wrote {', '.join(r.key for r in results)} to {args.doc}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
