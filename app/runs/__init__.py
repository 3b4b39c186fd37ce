"""Runs: fine-tunes and evaluations with their metrics, compared with the base model across snapshots."""
