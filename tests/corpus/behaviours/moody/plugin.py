"""A plugin whose first segment says what to do: 'sleep', 'crash:<tag>', 'raise', or echo."""

import os
import time

MARKER = "verified-moody"


def inspect(segments, ctx):
    command = segments[0] if segments else ""
    if command == "sleep":
        time.sleep(30)
    if command.startswith("crash"):
        os._exit(9)
    if command == "raise":
        raise ValueError("asked to raise")
    if command == "slow":
        time.sleep(0.02)
    return [MARKER, command]
