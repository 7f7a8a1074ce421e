"""SIGINT and SIGTERM: the first asks for a stop, the second stops at once."""

import os
import signal

from hospfed.server.stop import StopRequest
from hospfed.simulations.signals import SignalStop


def test_the_first_signal_requests_a_stop_and_the_second_stops_at_once():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    stop, at_once = StopRequest(), []
    with SignalStop(stop, at_once.append):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set()
        assert (stop.reason, stop.exit_code) == ("SIGTERM", 143)
        assert at_once == []
        os.kill(os.getpid(), signal.SIGINT)
        assert at_once == [signal.SIGINT]
        assert stop.reason == "SIGTERM"  # the first one decides
    assert {s: signal.getsignal(s) for s in before} == before


def test_installing_again_keeps_the_handlers_to_restore():
    before = signal.getsignal(signal.SIGINT)
    guard = SignalStop(StopRequest(), lambda signum: None)
    guard.install()
    guard.install()  # after Ray replaced a handler
    guard.restore()
    assert signal.getsignal(signal.SIGINT) == before
