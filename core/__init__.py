"""The stage contract every stage follows: registry, executors, folder layout, writers, stats, verdicts.

Below every feature package (generators, filters, curation, training); above schemas only.
"""
