"""Supervisor behaviour with real children: timeouts, respawn, breaker, quarantine, load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from haechi.host.sandbox import SandboxError
from haechi.host.sandbox.supervisor import LifecycleEvent, PluginSupervisor, SupervisorPolicy
from haechi.trust import SigningKey

from .helpers import CORPUS, run, signed_copy, verified

KEY = SigningKey.generate()


@pytest.fixture
def moody(tmp_path: Path) -> Path:
    return signed_copy(CORPUS / "behaviours" / "moody", tmp_path / "moody", KEY)


def answer(command: str) -> list[dict[str, object]]:
    """What moody answers for ``command``: one detection labelled with it."""
    return [
        {"type": "marker", "segment": 0, "start": 0, "end": 0, "label": f"verified-moody|{command}"}
    ]


def label(result: object) -> str:
    return result[0]["label"]  # type: ignore[index]


def kinds(events: list[LifecycleEvent]) -> list[str]:
    return [e.kind for e in events]


async def until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_timeout_kills_and_respawns(moody: Path) -> None:
    events: list[LifecycleEvent] = []

    async def scenario() -> object:
        async with PluginSupervisor(verified(moody, KEY), on_event=events.append) as sup:
            with pytest.raises(SandboxError) as info:
                await sup.call("inspect", [["sleep"]])
            assert info.value.reason == "timeout"
            await until(lambda: kinds(events).count("spawn") == 2)
            return await sup.call("inspect", [["hi"]])

    assert run(scenario) == answer("hi")
    assert kinds(events)[:5] == ["spawn", "failure", "quarantine", "kill", "spawn"]
    assert events[1].detail["reason"] == "timeout"


def test_respawn_uses_the_verified_bytes(moody: Path) -> None:
    async def scenario() -> object:
        async with PluginSupervisor(verified(moody, KEY)) as sup:
            code = moody / "plugin.py"
            code.write_text(code.read_text().replace("verified-moody", "swapped-on-disk"))
            with pytest.raises(SandboxError):
                await sup.call("inspect", [["crash:1"]])
            await until(lambda: sup.idle_children == 1)
            return await sup.call("inspect", [["after"]])

    assert run(scenario) == answer("after")


def test_poison_input_is_quarantined(moody: Path) -> None:
    events: list[LifecycleEvent] = []

    async def scenario() -> None:
        async with PluginSupervisor(verified(moody, KEY), on_event=events.append) as sup:
            with pytest.raises(SandboxError) as first:
                await sup.call("inspect", [["crash:poison"]])
            assert first.value.reason == "crashed"
            failures = kinds(events).count("failure")
            with pytest.raises(SandboxError) as again:
                await sup.call("inspect", [["crash:poison"]])
            assert again.value.reason == "quarantined"
            assert kinds(events).count("failure") == failures, "no second child was killed"
            await until(lambda: sup.idle_children == 1)
            assert await sup.call("inspect", [["fine"]]) == answer("fine")

    run(scenario)
    assert not any("poison" in repr(e.detail) for e in events), "inputs never appear in events"


def test_plugin_exception_does_not_count_as_a_crash(moody: Path) -> None:
    events: list[LifecycleEvent] = []

    async def scenario() -> None:
        policy = SupervisorPolicy(breaker_threshold=1)
        async with PluginSupervisor(verified(moody, KEY), policy, on_event=events.append) as sup:
            for _ in range(3):
                with pytest.raises(SandboxError) as info:
                    await sup.call("inspect", [["raise"]])
                assert info.value.reason == "plugin-error"
            assert sup.breaker_state == "closed"

    run(scenario)
    assert kinds(events) == ["spawn"]


def test_breaker_opens_half_opens_and_closes(moody: Path) -> None:
    events: list[LifecycleEvent] = []
    policy = SupervisorPolicy(breaker_threshold=3, breaker_window=60, breaker_cooldown=0.3)

    async def scenario() -> None:
        async with PluginSupervisor(verified(moody, KEY), policy, on_event=events.append) as sup:
            for n in range(3):
                await until(lambda: sup.idle_children == 1)
                with pytest.raises(SandboxError):
                    await sup.call("inspect", [[f"crash:{n}"]])
            assert sup.breaker_state == "open"
            with pytest.raises(SandboxError) as refused:
                await sup.call("inspect", [["fine"]])
            assert refused.value.reason == "breaker-open"
            await asyncio.sleep(0.35)
            await until(lambda: sup.idle_children == 1)
            assert await sup.call("inspect", [["probe"]]) == answer("probe")
            assert sup.breaker_state == "closed"

    run(scenario)
    sequence = [k for k in kinds(events) if k.startswith("breaker")]
    assert sequence == ["breaker-open", "breaker-half-open", "breaker-closed"]


def test_failed_probe_reopens_the_breaker(moody: Path) -> None:
    policy = SupervisorPolicy(breaker_threshold=1, breaker_cooldown=0.2)

    async def scenario() -> None:
        async with PluginSupervisor(verified(moody, KEY), policy) as sup:
            with pytest.raises(SandboxError):
                await sup.call("inspect", [["crash:a"]])
            await asyncio.sleep(0.25)
            await until(lambda: sup.idle_children == 1)
            with pytest.raises(SandboxError) as probe:
                await sup.call("inspect", [["crash:b"]])
            assert probe.value.reason == "crashed"
            assert sup.breaker_state == "open"

    run(scenario)


def test_full_queue_is_refused_at_once(moody: Path) -> None:
    policy = SupervisorPolicy(pool_size=1, queue_limit=2)

    async def scenario() -> list[object]:
        async with PluginSupervisor(verified(moody, KEY), policy) as sup:
            calls = [sup.call("inspect", [["slow"]]) for _ in range(6)]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(scenario)
    refused = [o for o in outcomes if isinstance(o, SandboxError)]
    assert {o.reason for o in refused} == {"queue-full"}
    assert len(refused) == 3  # one running, two waiting, three refused
    assert outcomes.count(answer("slow")) == 3


def test_500_calls_from_200_tasks_none_lost_none_hanging(moody: Path) -> None:
    policy = SupervisorPolicy(pool_size=2, queue_limit=100)

    async def scenario() -> list[object]:
        async with PluginSupervisor(verified(moody, KEY), policy) as sup:

            async def worker(index: int, count: int) -> list[object]:
                results: list[object] = []
                for n in range(count):
                    try:
                        results.append(await sup.call("inspect", [[f"w{index}-{n}"]]))
                    except SandboxError as exc:
                        results.append(exc.reason)
                return results

            counts = [3 if i < 100 else 2 for i in range(200)]  # 300 + 200 = 500 calls
            async with asyncio.timeout(120):
                batches = await asyncio.gather(*(worker(i, c) for i, c in enumerate(counts)))
            return [r for batch in batches for r in batch]

    outcomes = run(scenario)
    assert len(outcomes) == 500
    answered = [o for o in outcomes if isinstance(o, list)]
    explicit = [o for o in outcomes if isinstance(o, str)]
    assert len(answered) + len(explicit) == 500
    assert set(explicit) <= {"queue-full"}
    assert all(label(o).startswith("verified-moody|w") for o in answered)
    assert len({label(o) for o in answered}) == len(answered), "each answer matches its own call"


def test_waiting_callers_are_served_in_turn(moody: Path) -> None:
    """With one child and eight looping tasks, every task is served (none starved)."""

    async def scenario() -> list[int]:
        async with PluginSupervisor(verified(moody, KEY), SupervisorPolicy(pool_size=1)) as sup:
            served = [0] * 8

            async def loop(index: int) -> None:
                for n in range(20):
                    await sup.call("inspect", [[f"t{index}-{n}"]])
                    served[index] += 1

            async with asyncio.timeout(60):
                await asyncio.gather(*(loop(i) for i in range(8)))
            return served

    assert run(scenario) == [20] * 8


def test_child_that_stops_reading_cannot_block_the_host(tmp_path: Path) -> None:
    """A call frame larger than the pipe buffer to a child that never reads: the write waits
    under the call's deadline, then the child is killed."""
    import shutil

    source = tmp_path / "src"
    shutil.copytree(CORPUS / "behaviours" / "moody", source)
    (source / "plugin.py").write_text(
        "import time\n\ndef inspect(segments, ctx):\n    time.sleep(30)\n"
    )
    bundle = verified(signed_copy(source, tmp_path / "b", KEY), KEY)
    from haechi.host.sandbox import SandboxedChild, SandboxPolicy

    async def scenario() -> str:
        child = await SandboxedChild.spawn(bundle, SandboxPolicy())
        try:
            async with asyncio.timeout(20):  # a hang here would be the bug
                return await stuck(child)
        finally:
            await child.close()

    async def stuck(child: SandboxedChild) -> str:
        first = asyncio.ensure_future(child.call("inspect", [["x"]], timeout=1.0))
        await asyncio.sleep(0.1)  # the child is now asleep inside the first call
        with pytest.raises(SandboxError) as info:
            await child.call("inspect", [["y" * (4 * 1024 * 1024)]], timeout=0.5)
        first.cancel()
        return info.value.reason

    assert run(scenario) == "timeout"


def test_malformed_answer_is_refused_and_the_child_kept(moody: Path) -> None:
    events: list[LifecycleEvent] = []

    async def scenario() -> object:
        async with PluginSupervisor(verified(moody, KEY), on_event=events.append) as sup:
            with pytest.raises(SandboxError) as info:
                await sup.call("inspect", [["malformed"]])
            assert info.value.reason == "invalid-result"
            assert "end: must be an integer >= 5" in info.value.message
            return await sup.call("inspect", [["next"]])

    assert run(scenario) == answer("next")
    assert "kill" not in kinds(events) and kinds(events).count("spawn") == 1


@pytest.fixture
def lifecycle(tmp_path: Path) -> Path:
    return signed_copy(CORPUS / "behaviours" / "lifecycle", tmp_path / "lifecycle", KEY)


def test_setup_runs_before_the_first_call_and_teardown_on_close(lifecycle: Path) -> None:
    from haechi.host.sandbox.broker import Broker, KVStore

    bundle = verified(lifecycle, KEY, ["request:body-text", "secrets:read:mode", "state:kv"])
    kv = KVStore()
    broker = Broker(bundle.manifest, secrets={"mode": "strict"}, kv=kv)

    async def scenario() -> object:
        sup = PluginSupervisor(bundle, broker=broker)
        await sup.start()
        try:
            first = await sup.call("inspect", [["x"]])
            assert kv.get("lifecycle", "teardowns") is None
            return first, await sup.call("inspect", [["y"]])
        finally:
            await sup.close()

    first, second = run(scenario)  # type: ignore[misc]
    assert first[0]["label"] == second[0]["label"] == "strict"
    assert kv.get("lifecycle", "setups") == b"1"  # once per process, not per call
    assert kv.get("lifecycle", "teardowns") == b"1"


def test_a_failing_setup_fails_the_spawn_with_its_reason(lifecycle: Path) -> None:
    from haechi.host.sandbox.broker import Broker

    bundle = verified(lifecycle, KEY, ["request:body-text", "secrets:read:mode", "state:kv"])
    events: list[LifecycleEvent] = []
    broker = Broker(bundle.manifest, secrets={"mode": "fail"})

    async def scenario() -> None:
        sup = PluginSupervisor(bundle, broker=broker, on_event=events.append)
        try:
            await sup.start()
        finally:
            await sup.close()

    with pytest.raises(SandboxError) as info:
        run(scenario)
    assert info.value.reason == "setup-failed"
    assert "mode is fail" in info.value.message
    assert [e.detail["reason"] for e in events if e.kind == "spawn-failed"] == ["setup-failed"]


def test_drain_lets_calls_in_flight_finish_and_refuses_new_ones(moody: Path) -> None:
    async def scenario() -> tuple[object, str, bool, bool]:
        sup = PluginSupervisor(verified(moody, KEY), SupervisorPolicy(pool_size=2))
        await sup.start()
        in_flight = asyncio.create_task(sup.call("inspect", [["slow"]]))
        await until(lambda: sup.in_flight == 1)
        draining = asyncio.create_task(sup.drain(timeout=5))
        await asyncio.sleep(0)
        with pytest.raises(SandboxError) as refused:
            await sup.call("inspect", [["late"]])
        finished = await draining
        return await in_flight, refused.value.reason, finished, sup.idle_children == 0

    result, reason, finished, emptied = run(scenario)
    assert label(result) == "verified-moody|slow"
    assert reason == "closed"
    assert finished and emptied


def test_drain_gives_up_after_its_timeout(moody: Path) -> None:
    async def scenario() -> tuple[bool, str]:
        sup = PluginSupervisor(verified(moody, KEY), SupervisorPolicy(call_timeout=10))
        await sup.start()
        stuck = asyncio.create_task(sup.call("inspect", [["sleep"]]))
        await until(lambda: sup.in_flight == 1)
        finished = await sup.drain(timeout=0.2)
        with pytest.raises(SandboxError) as info:
            await stuck
        return finished, info.value.reason

    finished, reason = run(scenario)
    assert not finished
    assert reason == "crashed"  # the child was stopped under it, so the call cannot hang


def test_closing_while_setup_runs_leaves_no_child_behind(tmp_path: Path) -> None:
    import os
    import shutil

    source = tmp_path / "slow-setup"
    shutil.copytree(CORPUS / "behaviours" / "lifecycle", source)
    (source / "plugin.py").write_text(
        "import time\ndef setup(ctx):\n    time.sleep(1.5)\ndef inspect(segments):\n    return []\n"
    )
    bundle = verified(
        signed_copy(source, tmp_path / "b", KEY),
        KEY,
        ["request:body-text", "secrets:read:mode", "state:kv"],
    )

    async def scenario() -> list[int]:
        sup = PluginSupervisor(bundle, SupervisorPolicy(pool_size=2))
        starting = asyncio.create_task(sup.start())
        await until(lambda: len(sup._children) == 2)
        pids = [child.process.pid for child in sup._children]
        await sup.close()
        with pytest.raises(SandboxError):
            await starting
        return pids

    for pid in run(scenario):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
