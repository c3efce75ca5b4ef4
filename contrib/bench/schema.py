#!/usr/bin/env python3
"""Benchmark (not a test): the cost of checking a request body at the edge.

For the bodies the docker CLI 28 sends to ``POST /containers/create`` (a plain create, and one
with an inline seccomp profile, the largest body a real client sends), compare
``dockyard.core.schema.decode`` (msgspec decode + unsupported-field check + to_builtins) with
``json.loads`` alone, the parse the daemon did before bodies were checked. The third body has
one key in another case (docker-py's ``CPURealtimePeriod``): the path that parses twice.

    .venv/bin/python contrib/bench/schema.py [--runs 5000]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))

from dockyard.core import schema  # noqa: E402
from dockyard.hookspecs.host.seccomp import DEFAULT  # noqa: E402
from test_schema import CLI_CREATE  # noqa: E402


def per_call(fn, runs: int) -> float:
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(runs // 5):
            fn()
        samples.append((time.perf_counter() - t) / (runs // 5))
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5000)
    runs = ap.parse_args().runs
    big = json.loads(json.dumps(CLI_CREATE))
    big["HostConfig"]["SecurityOpt"] = ["seccomp=" + json.dumps(DEFAULT)]
    other_case = json.loads(json.dumps(CLI_CREATE))
    other_case["HostConfig"]["CPURealtimePeriod"] = other_case["HostConfig"].pop("CpuRealtimePeriod")
    for name, body in (("create busybox true", CLI_CREATE), ("create + seccomp profile", big),
                       ("create, a key in any case", other_case)):
        raw = json.dumps(body).encode()
        checked = per_call(lambda: schema.decode(raw, schema.ContainerCreate), runs)
        parsed = per_call(lambda: json.loads(raw), runs)
        print(f"{name:26} {len(raw):6d} B  schema.decode {checked * 1e6:6.1f} us  "
              f"json.loads {parsed * 1e6:6.1f} us  ratio {checked / parsed:4.2f}")


if __name__ == "__main__":
    main()
