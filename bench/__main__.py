"""Run every ``bench/bench_*.py`` module's ``run()`` and print what it measured.

Each ``run()`` returns a dict of named measurements (rates per second, seconds, MiB). Results are
printed as one JSON line per benchmark so that runs can be compared over time.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        result = module.run()
        result["wall_s"] = round(time.perf_counter() - started, 3)
        result["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps({"benchmark": name, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
