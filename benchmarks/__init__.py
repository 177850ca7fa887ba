"""Benchmarks: scripts that print one JSON object each, every figure a ratio against a baseline measured in the same
run on the same data. `python benchmarks/run_all.py [--quick]` runs them all (`make bench`)."""
