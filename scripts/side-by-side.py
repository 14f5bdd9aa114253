#!/usr/bin/env python3
"""Time `weir run --every-event` with several builds of weir, side by side.

Usage: scripts/side-by-side.py ROUNDS CASES PIPELINE OUT_DIR BINARY...

  CASES     warm | cold | all (cold, warm, then cache off, per round)
  PIPELINE  a pipeline file with `[cache] enabled = true`, whose output
            and cache are under OUT_DIR; the cache-off case runs the same
            file with `-off` before its extension (`p.toml` -> `p-off.toml`)
  OUT_DIR   the pipeline's output directory, emptied before each cold and
            cache-off run; a warm run removes only OUT_DIR/<pipeline name>

Each round runs every case with the binaries in turn, so that the
machine's slow and fast moments fall on all of them alike. Prints, per
binary, the median wall time (high resolution) and CPU time (user +
system of the child), warm vs cold, and the cold run's overhead over
cache off. The figures in docs/performance.md ("A cold run's host work
across the cores") were taken with it.
"""

import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import time
import tomllib


def main() -> None:
    if len(sys.argv) < 6 or sys.argv[2] not in ("warm", "cold", "all"):
        sys.exit(__doc__)
    rounds, cases = int(sys.argv[1]), sys.argv[2]
    cached, out = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
    binaries = sys.argv[5:]
    off = cached.with_name(f"{cached.stem}-off{cached.suffix}")
    name = tomllib.loads(cached.read_text())["pipeline"]["name"]
    env = dict(os.environ, WEIR_LOG="warn")

    def run(binary: str, pipeline: pathlib.Path) -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [binary, "run", "--every-event", "-c", str(pipeline)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            check=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu

    def case(binary: str, which: str) -> tuple[float, float]:
        if which == "warm":
            shutil.rmtree(out / name, ignore_errors=True)
            return run(binary, cached)
        shutil.rmtree(out, ignore_errors=True)
        return run(binary, cached if which == "cold" else off)

    if cases == "warm":
        case(binaries[0], "cold")  # the cache the warm runs read
    order = ["cold", "warm", "off"] if cases == "all" else [cases]
    timed: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for which in order:
            for binary in binaries:
                timed.setdefault((binary, which), []).append(case(binary, which))

    def median(binary: str, which: str, index: int) -> float:
        return statistics.median(t[index] for t in timed[(binary, which)])

    for binary in binaries:
        line = binary + ":"
        for which in ("off", "cold", "warm"):
            if (binary, which) in timed:
                line += f"  {which} {median(binary, which, 0):.3f} s / {median(binary, which, 1):.3f} CPU-s"
        if (binary, "cold") in timed and (binary, "warm") in timed:
            line += f"  warm vs cold {median(binary, 'cold', 0) / median(binary, 'warm', 0):.2f}x"
        if (binary, "cold") in timed and (binary, "off") in timed:
            overhead = median(binary, "cold", 0) / median(binary, "off", 0) - 1
            line += f"  cold overhead {100 * overhead:+.1f}%"
        print(line)


if __name__ == "__main__":
    main()
