"""Offline evaluation and experiments."""
