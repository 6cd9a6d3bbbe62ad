"""Recorded-file readers, validation and the canonical `samples` table."""
