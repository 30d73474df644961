"""setup reads the 'mode' secret once per process; teardown counts itself in the kv store."""

from haechi.sdk import Detection, hookimpl

STATE = {}


@hookimpl
def setup(ctx):
    mode = ctx.secret("mode")
    if mode == "fail":
        raise RuntimeError("refusing to start: mode is fail")
    STATE["mode"] = mode
    ctx.kv.set("setups", str(int(ctx.kv.get("setups") or 0) + 1))


@hookimpl
def inspect(segments):
    return [Detection("mode", 0, 0, 0, label=STATE.get("mode", "no setup"))]


@hookimpl
def teardown(ctx):
    ctx.kv.set("teardowns", str(int(ctx.kv.get("teardowns") or 0) + 1))
