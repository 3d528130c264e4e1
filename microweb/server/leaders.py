"""Which pool threads poll: one while requests are quick, more as soon as the app blocks.

Every pool thread can poll the worker's epoll and handle what it gets, but letting all of
them do so at once costs dearly on fast requests: each request then passes through several
threads fighting for the GIL, and CPython's GIL lets a waiting thread starve while the others
hand it around (at 16 connections with 4 threads, one request in ten waited 3 ms or more and
one in a hundred 13 ms). So only the *leaders* poll. One leader is enough while requests are
short; the other threads are *followers*, and one of them (the watcher) looks at the leaders
every millisecond while they are busy (every few while they only handle quick events):

- when every leader has been on one event for ``BUSY`` seconds and sleeps in it while no
  other thread of the process runs (so it waits on a database, a file, the network, not on
  the GIL), the watcher joins them;
- when every leader has been on one event for ``STALL`` seconds (a CPU-heavy request), it
  joins as well, so one long request never holds up the rest;
- a leader steps back down after a quick event when another leader is free or is also on a
  quick event: more threads on CPU-bound work would only contend for the GIL.

"Sleeps" and "runs" are the threads' states in ``/proc`` on Linux. Elsewhere the process's
CPU time stands in: a busy leader while the process uses under half a CPU is waiting.
While the leaders sit idle in poll the watcher naps longer, up to ``DOZE`` seconds.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["Leader", "Leaders"]

CHECK = 0.001  # the watcher's look while the leaders are busy
QUICK_NAP = 0.004  # its longest nap while the leaders handle quick events
DOZE = 0.05  # its longest nap while some leader is idle in poll
BUSY = 0.0005  # an event this long may be waiting on something: look closer
STALL = 0.01  # an event this long needs company whatever it is doing
IDLE_CPU = 0.5  # without /proc: below this share of a CPU the process is waiting

_clock = time.monotonic
_cpu_clock = time.process_time


class Leader:
    """One pool thread's state, written by that thread alone: ``since`` > 0 is when it
    began handling its current event, < 0 minus the time it began polling, 0: it follows."""

    __slots__ = ("since", "tid")

    def __init__(self) -> None:
        self.since = 0.0
        self.tid = threading.get_native_id()


def _running(tid: int) -> bool | None:
    """Is thread ``tid`` of this process running or runnable? None where unknown."""
    try:
        fd = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 512).rpartition(b")")[2][1:2] == b"R"
    except OSError:
        return None
    finally:
        os.close(fd)


def _others_running(exclude: set[int]) -> bool:
    """Does some thread of this process outside ``exclude`` run (and so hold the GIL)?"""
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return False
    return any(int(tid) not in exclude and _running(int(tid)) for tid in tids)


_HAVE_PROC = _running(threading.get_native_id()) is not None


class Leaders:
    """The set of leading threads and the rules for joining and leaving it."""

    def __init__(self) -> None:
        self.current: tuple[Leader, ...] = ()
        self._lock = threading.Lock()
        self._watch = threading.Lock()  # held by the one follower that watches
        self._closed = threading.Event()
        self._cpu_mark = (_clock(), _cpu_clock())

    def close(self) -> None:
        """Release every follower (the server is exiting)."""
        self._closed.set()

    def follow(self, me: Leader) -> bool:
        """Block until ``me`` should lead (True) or the server exits (False)."""
        closed = self._closed
        with self._watch:
            interval = CHECK
            while not closed.is_set():
                verdict = self._verdict(me)
                if verdict is None:
                    with self._lock:
                        if closed.is_set():
                            break
                        self.current = (*self.current, me)
                    return True
                # look again soon while a leader may be blocked; back off while they are
                # quick (a slow request is then noticed a few ms later) or free
                if verdict == "busy":
                    interval = CHECK
                else:
                    interval = min(interval * 2, QUICK_NAP if verdict == "quick" else DOZE)
                closed.wait(interval)
        return False

    def _verdict(self, watcher: Leader) -> str | None:
        """None: join now; "busy": every leader has been on its event for a while, look again
        soon; "quick": some leader is on a quick event; "free": some leader is polling."""
        leaders = self.current
        if not leaders:
            return None
        now = _clock()
        cpu_share = self._cpu_share(now)
        sinces = [leader.since for leader in leaders]  # read once: the leaders move on
        if min(sinces) <= 0:
            return "free"
        if now - max(sinces) < BUSY:
            return "quick"
        if not _HAVE_PROC:
            waiting = cpu_share < IDLE_CPU
            return None if waiting or now - max(sinces) >= STALL else "busy"
        sleeping = False
        for leader, since in zip(leaders, sinces, strict=True):
            if _running(leader.tid):
                if now - since < STALL:  # computing, and not for long yet
                    return "busy"
            else:
                sleeping = True
        # A leader sleeps: on I/O, or on the GIL if some other thread runs meanwhile.
        if sleeping and _others_running({watcher.tid, *(leader.tid for leader in leaders)}):
            return "busy"
        return None

    def _cpu_share(self, now: float) -> float:
        """The share of a CPU the process used since the last look (the fallback's clue)."""
        if _HAVE_PROC:
            return 0.0
        cpu = _cpu_clock()
        (wall, used), self._cpu_mark = self._cpu_mark, (now, cpu)
        return (cpu - used) / (now - wall) if now > wall else 1.0

    def step_down(self, me: Leader, took: float) -> bool:
        """After an event that took ``took`` seconds: should ``me`` stop leading?"""
        if took >= BUSY or len(self.current) < 2:
            return False
        now = _clock()
        with self._lock:
            others = tuple(leader for leader in self.current if leader is not me)
            # another leader is polling, or handling a quick event too: one is enough
            if not any(leader.since < 0 or now - leader.since < BUSY for leader in others):
                return False
            self.current = others
        me.since = 0.0
        return True
