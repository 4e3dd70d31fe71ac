"""Where a sweep's chunks run, and how they stop: in this process, local worker processes, any
:class:`concurrent.futures.Executor`, or a Dask cluster.

:func:`execute` yields each chunk's rows as it finishes. Local workers (the default) die with the
sweep: each one ignores SIGINT (Ctrl-C at a terminal reaches the whole process group; the sweep's
process decides), has the kernel send it SIGKILL when its parent dies (Linux ``PR_SET_PDEATHSIG``)
and watches the sweep's process from a thread (a pidfd where the platform has one), exiting when it
is gone. When the sweep stops early (an exception, SIGINT, SIGTERM) the workers are terminated at
once, not waited for: finished rows are already in the journal, and the chunks in flight are
computed again on resume.

:func:`interruptible` turns SIGINT and SIGTERM into :class:`SweepInterrupted` while a sweep runs
(only where the caller left Python's default handlers), and holds a signal back while a
:meth:`_Signals.critical` section (a journal write) runs, so a finished row is never half written.
A Dask scheduler address that cannot be reached is one :class:`~sim.sweep.results.SweepError`
within seconds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sim.sweep.results import SweepError

__all__ = ["SweepInterrupted", "connect", "execute", "interruptible", "workers_of"]

log = logging.getLogger(__name__)

Chunk = list[Any]
Work = Callable[[Chunk], list[dict[str, Any]]]

_CONNECT_TIMEOUT_S = 5.0


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by SIGINT or SIGTERM; ``signum`` says which (a command exits ``128 + signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM as :class:`SweepInterrupted` in the main thread, the first one only."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._raised = False
        self._deferring = 0
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
                if signal.getsignal(signum) is default:
                    self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:  # already stopping: the first signal's clean-up must finish
            return
        self.received = signum
        if not self._deferring:
            self._raise()

    def _raise(self) -> None:
        self._raised = True
        raise SweepInterrupted(self.received)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Hold a signal back until the end of this block (then raise it)."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self.received is not None and not self._raised:
            self._raise()


def interruptible() -> _Signals:
    """A context in which SIGINT and SIGTERM raise :class:`SweepInterrupted` (see the module docstring)."""
    return _Signals()


# -- workers ------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _worker_init(sweep_pid: int) -> None:
    """Run in each local worker before any chunk: die with the sweep, leave Ctrl-C to it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker would inherit the sweep's handler
    if sys.platform.startswith("linux") and os.getppid() == sweep_pid:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not _alive(sweep_pid):  # the sweep died before the line above could take effect
        os._exit(1)
    threading.Thread(target=_watch, args=(sweep_pid,), name="sweep-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(sweep_pid: int) -> None:
    """Exit this worker when the sweep's process is gone."""
    try:
        fd = os.pidfd_open(sweep_pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])  # readable when the process has exited
    else:
        while _alive(sweep_pid) and os.getppid() != 1:
            time.sleep(0.5)
    os._exit(1)


def _stop_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now.

    The futures are cancelled by the pool's own thread (``cancel_futures``), never here: on Python
    3.11 that thread fails on a future cancelled behind its back once it sees the workers gone."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # (this forgets the processes: they were taken first)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    deadline = time.monotonic() + 2.0
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            if process.exitcode is None:
                process.kill()


def _local(work: Work, chunks: list[Chunk], workers: int) -> Iterator[list[dict[str, Any]]]:
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                                  initargs=(os.getpid(),))
    futures: list[concurrent.futures.Future] = []
    finished = False
    try:
        futures = [pool.submit(work, chunk) for chunk in chunks]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
        finished = True
    except BrokenProcessPool as exc:
        raise SweepError(f"a sweep worker process died ({_line(exc)}); finished rows are kept: resume to "
                         f"compute the rest") from None
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop_pool(pool)


def _line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# -- Dask ---------------------------------------------------------------------------------------------

def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed"


def _probe(address: str) -> None:
    """Raise :class:`SweepError` unless a TCP scheduler ``address`` accepts a connection (within seconds)."""
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return  # tls://, inproc://, ...: distributed's own connect, with its timeout
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"Dask scheduler address must be tcp://HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or _line(exc))
        raise SweepError(f"cannot reach the Dask scheduler at {address}: {reason}") from None


@contextlib.contextmanager
def connect(executor: Any) -> Iterator[Any]:
    """``executor`` itself, or for a Dask scheduler address a ``distributed.Client`` connected to it
    (closed at the end); an address that cannot be reached raises :class:`SweepError` within seconds."""
    if not isinstance(executor, str):
        yield executor
        return
    try:
        from distributed import Client
    except ImportError:
        raise SweepError("running on a Dask scheduler needs distributed (pip install distributed)") from None
    _probe(executor)
    try:
        client = Client(executor, timeout=2 * _CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"cannot connect to the Dask scheduler at {executor}: {_line(exc)}") from None
    with client:
        yield client


def _dask(work: Work, chunks: list[Chunk], client: Any) -> Iterator[list[dict[str, Any]]]:
    from distributed import as_completed

    futures = [client.submit(work, chunk, pure=False) for chunk in chunks]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        client.cancel(futures)


def workers_of(executor: Any, max_workers: int | None) -> int:
    """How many chunks run at once on ``executor`` (to size the chunks)."""
    if executor is None:
        return max_workers or os.cpu_count() or 1
    if _is_dask(executor):
        return max(1, len(executor.scheduler_info().get("workers", {})))
    return getattr(executor, "_max_workers", None) or max_workers or os.cpu_count() or 1


def execute(work: Work, chunks: list[Chunk], executor: Any, max_workers: int | None) -> Iterator[list[dict]]:
    """Run ``work`` on every chunk and yield each chunk's rows as it finishes (in any order).

    ``executor``: ``None`` (local processes, ``max_workers`` of them, all cores by default;
    ``max_workers=1`` runs in this process), a :class:`concurrent.futures.Executor` or a
    ``distributed.Client`` (for an address, :func:`connect` first).
    """
    if executor is None:
        workers = workers_of(None, max_workers)
        if workers == 1:
            for chunk in chunks:
                yield work(chunk)
            return
        yield from _local(work, chunks, min(workers, len(chunks)) or 1)
        return
    if _is_dask(executor):
        yield from _dask(work, chunks, executor)
        return
    futures = [executor.submit(work, chunk) for chunk in chunks]
    try:
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()
