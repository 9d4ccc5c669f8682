"""Experiment tooling: aggregate Hydra multiruns into tables, statistics and reports."""
