"""Example filter plugin: reports every 'hello' in the request text segments."""

import re

HELLO = re.compile(r"\bhello\b", re.IGNORECASE)


def inspect(segments, ctx):
    return [
        {"type": "greeting", "segment": i, "start": m.start(), "end": m.end()}
        for i, text in enumerate(segments)
        for m in HELLO.finditer(text)
    ]
