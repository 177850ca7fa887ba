"""Evaluation the way the field reports it: n samples per problem, graded by the RL rewards, summarised as
pass@1 (with its standard error over problems), unbiased pass@k, maj@k, format and truncation rates, lengths,
accuracy by difficulty level, and accuracy against a thinking budget (s1-style test-time scaling).

- ``metrics``: the numbers, from per-sample records (pure Python, no torch).
- ``budgets``: two-phase generation that caps or extends the thinking at a token budget, over any backend.
- ``sampling``: benchmark rows -> prompts -> backend -> graded per-sample records.
- ``report``: results.md, and the PNG plots.
- ``sources``: where benchmark rows come from (named benchmarks, procedural test splits, any file).

The ``evaluate`` stage (pipeline/stages/evaluate.py) wires them together.
"""
