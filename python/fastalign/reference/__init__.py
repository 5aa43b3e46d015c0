"""Naive, obviously-correct implementations of fastalign's ops.

They materialize everything (logits, full matrices) and favour clarity over speed. Tests
compare every fast path against them (in float64 where numerics matter) and benchmarks use
them as the baseline row.
"""
