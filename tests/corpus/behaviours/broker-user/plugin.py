"""Its first segment names an action on ctx; it reports what the broker answered."""

from haechi.sdk import CapabilityError


def inspect(segments, ctx):
    action, *rest = segments
    try:
        if action == "secret":
            return ["ok", ctx.secret(rest[0])]
        if action == "kv-set":
            ctx.kv.set(rest[0], rest[1])
            return ["ok", None]
        if action == "kv-get":
            return ["ok", ctx.kv.get(rest[0])]
        if action == "fetch":
            response = ctx.fetch(rest[0])
            return ["ok", response.status, response.body]
        if action == "raw":  # ask the broker for something no ctx method offers
            return ["ok", ctx._transport(rest[0], {})]
    except CapabilityError as exc:
        return ["refused", exc.reason]
    return ["unknown action"]
