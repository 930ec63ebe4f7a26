"""Errors whose message tells the user what is wrong and how to fix it (printed as one line, exit 2)."""

from __future__ import annotations


class UserError(Exception):
    """Anything the user can fix: configuration, input files, unreachable services."""
