"""Scoring-side metrics: pure functions over arrays; never import student code."""
