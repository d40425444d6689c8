"""Fault, load and bad-input tests: nothing lost, nothing doubled, nobody let in."""
