"""Hostile archives for the tar entry points (generated, never committed as binaries)."""
