"""Durable state: run history, dead-letter archive, coordination claims."""
