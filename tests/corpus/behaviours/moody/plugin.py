"""A plugin whose first segment says what to do: 'sleep', 'crash:<tag>', 'raise', 'slow',
'malformed', or anything else, which it reports back as one detection labelled with it."""

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
    if command == "malformed":
        return [{"type": "x", "segment": 0, "start": 5, "end": 1}]
    return [{"type": "marker", "segment": 0, "start": 0, "end": 0, "label": f"{MARKER}|{command}"}]
