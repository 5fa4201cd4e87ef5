"""Prometheus collectors for the service, behind intent-named methods (signaling.py)."""
