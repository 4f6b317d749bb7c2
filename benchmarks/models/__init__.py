"""Models shared by several benchmarks (the per-problem ones live in ``benchmarks.problems``)."""
