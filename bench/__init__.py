"""Benchmarks: `make bench` runs them all and rewrites docs/BENCHMARKS.md."""
