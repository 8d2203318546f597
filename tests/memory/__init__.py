"""Household memory tests."""
