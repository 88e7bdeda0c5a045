"""Benchmarks (``make bench``): speed and memory, measured here and never asserted in tests."""
