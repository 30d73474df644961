"""secret-filter: credentials in request text (see README.md for what each type matches)."""

import secret_rules
import textspan
from haechi.sdk import Detection, hookimpl


@hookimpl
def inspect(segments, ctx):
    return [
        Detection(kind, segment, start, end, label, confidence)
        for segment, start, end, kind, label, confidence in textspan.scan(
            segments, secret_rules.find_all, secret_rules.RANK
        )
    ]
