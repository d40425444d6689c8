"""Schedules: the jobs file, trigger time math, and the highly available scheduler loop."""
