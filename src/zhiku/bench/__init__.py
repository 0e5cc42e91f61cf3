"""Benchmarks: print a table and append the figures, command and machine to BENCHMARKS.md."""
