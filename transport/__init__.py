"""Tornado handlers that translate between the wire and actor messages, and nothing else."""
