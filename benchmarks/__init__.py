"""Benchmarks: Archetype against a no-Prefect baseline (``make bench``; docs/performance.md)."""
