"""Run every benchmark: ``python -m benchmarks``."""

import sys

from benchmarks import bench_validate, seed_throughput

bench_validate.main()
sys.argv = sys.argv[:1]
seed_throughput.main()
