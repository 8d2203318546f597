"""Benchmarks of Home Agent, measured side by side with the naive design of the original plan."""
