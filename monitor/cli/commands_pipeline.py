"""Commands of the pipeline concern (registered by monitor.cli)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this concern's sub-commands to the `monitor` parser."""
