"""Plumbing every layer may use; it imports no domain code."""
