"""Latency and memory predictors fitted on device profiles.

Owns: features of an architecture, cost models, their evaluation and persistence
(see DESIGN.md). Imports scikit-learn, pandas and ``search_spaces`` only. Nothing lives here
yet: the predictors arrive with the profiling issue.
"""
