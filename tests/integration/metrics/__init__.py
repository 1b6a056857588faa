"""Tests of /metrics, the alert rules and the structured logs."""
