"""Stride detection, per-stride metrics, session aggregates, trends, flags and team batch."""
