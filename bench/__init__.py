"""Benchmarks: how quickly and cheaply the dispatcher notices, next to the seed approach and the floor.

``python -m bench [--quick] [--out DIR]`` runs everything and regenerates docs/benchmarks.md and
docs/bench/*.png (see docs/benchmarks.md for what each number means).
"""
