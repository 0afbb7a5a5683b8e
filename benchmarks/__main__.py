"""Run every benchmark: ``python -m benchmarks``."""

from benchmarks import bench_validate

bench_validate.main()
