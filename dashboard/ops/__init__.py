"""Operator pages: the admin health page, its actions, /metrics and the health check."""
