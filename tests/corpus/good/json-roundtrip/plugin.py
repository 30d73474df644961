"""Positive control: a json round trip (lazy import of json and _json)."""

import json


def inspect(segments, ctx):
    return json.loads(json.dumps({"segments": segments}, sort_keys=True))
