"""Generators of the manual's pieces that must follow the code (run by docs/generate.py)."""
