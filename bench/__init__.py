"""Benchmarks: scripts that start what they need and print one JSON line (see docs/BENCHMARKS.md)."""
