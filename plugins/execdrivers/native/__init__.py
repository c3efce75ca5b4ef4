"""Placeholder: the native exec driver is being written."""
