"""Tests for Home Agent."""
