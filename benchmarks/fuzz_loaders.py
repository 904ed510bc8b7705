"""Run the loader fuzz properties (tests/test_fuzz_loaders.py) with a larger budget; write JSON.

The suite runs each property on 40 examples; this runs ``--examples`` (default 2000) and also
times the content hash that keys the parsed-cohort cache on PhysioNet 2012 sets A and B when
the data is found (``--physionet DIR``, default ../shared/data/physionet2012).

    python benchmarks/fuzz_loaders.py --examples 2000 --out benchmarks/results/fuzz_loaders.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hashing_cost(folder: Path) -> dict | None:
    """Seconds to fingerprint sets A and B by content (three runs: cold page cache first)."""
    from tardiff.data.cache import file_fingerprint
    from tardiff.data.physionet2012 import source_files

    paths = source_files(folder, "ab")
    if not all(p.is_file() for p in paths):
        return None
    times = []
    for _ in range(3):
        start = time.perf_counter()
        file_fingerprint(paths)
        times.append(time.perf_counter() - start)
    return {"bytes": sum(p.stat().st_size for p in paths), "seconds": times}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="hypothesis examples per property")
    parser.add_argument("--physionet", default=str(ROOT.parent / "shared" / "data" / "physionet2012"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz_loaders.json"))
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples must be >= 1")
    env = dict(os.environ, TARDIFF_FUZZ_EXAMPLES=str(args.examples))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_fuzz_loaders.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    result = {
        "examples_per_property": args.examples, "passed": proc.returncode == 0,
        "seconds": round(time.perf_counter() - start, 2), "summary": proc.stdout.strip().splitlines()[-1:],
        "failures": proc.stdout[-4000:] if proc.returncode else "",
        "cohort_cache_hash_physionet_ab": hashing_cost(Path(args.physionet)),
    }
    from tardiff.data.cache import write_json

    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
