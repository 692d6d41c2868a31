"""CrashGuard: blame a runner crash on the trigger(s) that were starting, isolate them, quarantine a repeat killer."""

from __future__ import annotations

from tocsin_client.triggerer._crashes import CrashGuard


def test__one_suspect__is_blamed_started_alone_and_quarantined_at_the_limit() -> None:
    guard = CrashGuard(probation_s=5.0, limit=3)
    guard.started(1, now=0.0)  # runs long enough: proven
    guard.started(2, now=10.0)  # the one starting when the runner died
    verdict = guard.crashed({1, 2}, now=10.5)
    assert verdict.suspects == {2}
    assert verdict.quarantined == {}
    assert guard.admit(1)
    assert not guard.admit(2)  # waits for its turn, alone
    assert guard.release(now=11.0) == [2]
    guard.started(1, now=11.0)  # proven: not on probation again
    guard.started(2, now=11.0)
    assert guard.crashed({1, 2}, now=11.2).suspects == {2}
    assert guard.release(now=12.0) == [2]
    guard.started(2, now=12.0)
    verdict = guard.crashed({1, 2}, now=12.1)
    assert verdict.quarantined == {2: 3}
    assert guard.admit(2) and guard.waiting == 0


def test__a_batch_of_suspects__is_bisected_until_a_crash_has_one() -> None:
    guard = CrashGuard(probation_s=5.0, limit=2)
    bad = 6
    for trigger_id in range(8):
        guard.started(trigger_id, now=0.0)
    verdict = guard.crashed(range(8), now=1.0)
    assert verdict.suspects == set(range(8))
    now, crashes = 1.0, 1
    while True:
        now += 1.0
        group = guard.release(now)
        assert group, "a group gets its turn once the previous one passed its probation"
        for trigger_id in group:
            guard.started(trigger_id, now)
        if bad not in group:
            assert guard.release(now + 1.0) == []  # still on trial
            now += guard.probation_s
            continue
        crashes += 1
        verdict = guard.crashed(group, now + 0.1)
        if verdict.quarantined:
            break
    assert verdict.quarantined == {bad: 2}
    assert crashes <= 5  # 8 suspects: three halvings, then the limit
    while guard.waiting:  # the innocent suspects left start too, a group per probation
        now += guard.probation_s
        assert guard.release(now)
    assert all(guard.admit(trigger_id) for trigger_id in range(8))


def test__a_crash_after_every_probation__blames_nobody() -> None:
    guard = CrashGuard(probation_s=5.0)
    guard.started(1, now=0.0)
    verdict = guard.crashed({1}, now=60.0)
    assert verdict.suspects == set()
    assert guard.admit(1)


def test__forget__drops_a_waiting_suspect() -> None:
    guard = CrashGuard(probation_s=5.0)
    guard.started(1, now=0.0)
    guard.crashed({1}, now=0.1)
    assert not guard.admit(1)
    guard.forget(1)
    assert guard.admit(1)
    assert guard.release(now=1.0) == []
