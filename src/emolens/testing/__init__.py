"""Helpers for emolens' own tests and benchmarks (not needed to use emolens)."""
