"""The simulated GPU behind the `pycuda` and `tensorrt` contract test doubles.

It keeps what the real libraries' documented semantics depend on: a CUDA context is current
per thread (a stack per thread; push/pop act on the calling thread only), driver calls without
a current context fail like pycuda's LogicError "invalid device context" (except work on an
explicit stream, which carries the context it was made in: measured on a real GPU by
bench/gpu_cuda_plumbing.py, bench/gpu_cuda_plumbing.json's no_context_calls), device memory is
separate from host memory and bounds-checked, async copies are queued on a stream and happen
only when the stream is synchronized (so reading a result before synchronizing sees old data).
Every device allocation, page-locked host buffer and stream belongs to the context current when
it was made; one still alive when that context is released is recorded in `leaks` (pycuda frees
such objects only when they become unreachable, and then in a dead context: a leak).
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Callable

import numpy as np


class Error(Exception):
    """pycuda.driver.Error: base of the driver's errors."""


class LogicError(Error):
    """pycuda.driver.LogicError: e.g. a call with no current context."""


class MemoryError(Error):  # noqa: A001 (pycuda's name)
    """pycuda.driver.MemoryError."""


class Context:
    """A CUDA context of device 0; `primary` for the retained primary context."""

    _ids = itertools.count(1)

    def __init__(self, primary: bool):
        self.id = next(self._ids)
        self.primary = primary
        self.refcount = 1


_threads = threading.local()
_lock = threading.Lock()
_primary: Context | None = None


def stack() -> list[Context]:
    if not hasattr(_threads, "stack"):
        _threads.stack = []
    return _threads.stack


def current() -> Context | None:
    return stack()[-1] if stack() else None


def require_context(call: str) -> Context:
    """The calling thread's current context, or pycuda's error for a call made without one."""
    context = current()
    if context is None:
        raise LogicError(f"{call} failed: invalid device context - no currently active context?")
    return context


def retain_primary() -> Context:
    global _primary
    with _lock:
        if _primary is None or _primary.refcount == 0:
            _primary = Context(primary=True)
        else:
            _primary.refcount += 1
        return _primary


class Memory:
    """Device allocations by address; every access is bounds-checked."""

    def __init__(self):
        self.blocks: dict[int, bytearray] = {}
        self.owners: dict[int, Context] = {}         # device address -> context it was allocated in
        self.pinned: dict[int, tuple[int, int, Context]] = {}  # id -> (start, end, context) of page-locked buffers
        self._next = 0x7F0000000000

    def alloc(self, nbytes: int, context: Context) -> int:
        with _lock:
            address = self._next
            self._next += (max(nbytes, 1) + 255) // 256 * 256 + 256
            self.blocks[address] = bytearray(nbytes)
            self.owners[address] = context
            return address

    def free(self, address: int) -> None:
        with _lock:
            if self.blocks.pop(address, None) is None:
                raise LogicError(f"cuMemFree failed: invalid value (address {address:#x} is not allocated)")
            del self.owners[address]

    def view(self, address: int, nbytes: int, call: str) -> memoryview:
        """`nbytes` of device memory starting at `address` (inside one allocation)."""
        for start, block in self.blocks.items():
            if start <= address < start + max(len(block), 1):
                offset = address - start
                if offset + nbytes > len(block):
                    raise LogicError(f"{call} failed: invalid argument ({nbytes} bytes at {address:#x} overrun "
                                     f"an allocation of {len(block)})")
                return memoryview(block)[offset:offset + nbytes]
        raise LogicError(f"{call} failed: invalid argument (address {address:#x} is not device memory)")

    def is_pinned(self, array: np.ndarray) -> bool:
        address = array.__array_interface__["data"][0]
        return any(start <= address and address + array.nbytes <= end for start, end, _ in self.pinned.values())


memory = Memory()
leaks: list[str] = []   # what was still allocated in a context when it was released


def release(context: Context) -> None:
    """The context's last reference is gone: record what it still owned as leaks."""
    leaks.extend(f"device allocation {address:#x} ({len(memory.blocks[address])} bytes)"
                 for address, owner in memory.owners.items() if owner is context)
    leaks.extend(f"page-locked host buffer of {end - start} bytes"
                 for start, end, owner in memory.pinned.values() if owner is context)
    leaks.extend(f"stream {handle:#x}" for handle, stream in list(streams.items()) if stream.context is context)


class Stream:
    """Work queued in order; it runs when the stream is synchronized."""

    _handles = itertools.count(0x5000)

    def __init__(self):
        self.context = require_context("cuStreamCreate")
        self.handle = next(self._handles)
        self.queue: list[Callable[[], None]] = []
        streams[self.handle] = self

    def enqueue(self, work: Callable[[], None]) -> None:
        self.queue.append(work)

    def synchronize(self) -> None:
        """Runs the queued work; needs no current context (the stream has its own)."""
        work, self.queue = self.queue, []
        for item in work:
            item()


streams: "weakref.WeakValueDictionary[int, Stream]" = weakref.WeakValueDictionary()  # destroyed when unreachable
