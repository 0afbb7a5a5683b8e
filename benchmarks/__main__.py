"""Run every benchmark: ``python -m benchmarks``."""

import sys

from benchmarks import bench_validate, cluster_sim, seed_throughput

bench_validate.main()
sys.argv = sys.argv[:1]
seed_throughput.main()
cluster_sim.main([])
