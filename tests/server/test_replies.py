"""The coordinator's own wait for replies: every reply, or what came in time."""

from __future__ import annotations

import time
from types import SimpleNamespace

from hospfed.server.replies import ReplyLog


def _reply(to):
    return SimpleNamespace(
        has_error=lambda: False, metadata=SimpleNamespace(reply_to_message_id=to)
    )


class SlowGrid:
    """Replies to ``a`` at once, to ``b`` on the third pull (or never)."""

    def __init__(self, b_on_pull=3):
        self.pulls = 0
        self.b_on_pull = b_on_pull

    def push_messages(self, messages):
        return ["a", "b"]

    def pull_messages(self, ids):
        self.pulls += 1
        ready = [_reply("a")] if self.pulls == 1 else []
        if self.pulls == self.b_on_pull and "b" in ids:
            ready.append(_reply("b"))
        return ready


def test_every_reply_is_collected_with_short_polls_at_first(monkeypatch):
    import hospfed.server.replies as replies_module

    slept = []
    monkeypatch.setattr(replies_module.time, "sleep", slept.append)
    grid = SlowGrid()
    replies = list(ReplyLog(grid).send_and_receive([], timeout=None))
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b"]
    assert grid.pulls == 3
    assert slept == [0.005, 0.0075]  # not Flower's fixed 0.1 s (3 s deployed)


def test_the_wait_between_polls_backs_off_to_a_cap(monkeypatch):
    import hospfed.server.replies as replies_module

    slept = []
    monkeypatch.setattr(replies_module.time, "sleep", slept.append)
    grid = SlowGrid(b_on_pull=40)
    list(ReplyLog(grid).send_and_receive([], timeout=None))
    assert slept[-1] == 0.5 and max(slept) == 0.5  # a deployment's grid
    grid = SlowGrid(b_on_pull=40)
    grid.pull_interval = 0.1  # Flower's simulation grid names its own
    slept.clear()
    list(ReplyLog(grid).send_and_receive([], timeout=None))
    assert max(slept) == 0.1


def test_a_timeout_returns_what_came_in_time():
    grid = SlowGrid(b_on_pull=10**9)  # b never answers
    start = time.monotonic()
    replies = list(ReplyLog(grid).send_and_receive([], timeout=0.2))
    assert [r.metadata.reply_to_message_id for r in replies] == ["a"]
    assert time.monotonic() - start >= 0.2
    assert grid.pulls > 3  # polled until the deadline
