"""The notebooks' kernels of a weekly run: started ahead and warmed, run along the step graph, stopped together.

A kernel takes seconds to start and to import the stack (pandas, ibis, DuckDB, matplotlib, the
playbook); a notebook waiting for it while the machine has an idle core wastes them. ``Kernels``
starts each notebook's own kernel before the notebook may run (the first ones while the runner
opens and validates the source), and warms it: the imports of the notebook's code cells run in it
silently (``silent=True``: no output, no history, no execution count), so the notebook's cells,
their numbers and their outputs are those of a cold kernel. The notebook itself still gets a
fresh kernel of its own: nothing of another notebook's state can leak into it.

Then ``Kernels.run`` executes the notebooks along the step graph (``run.graph``): up to ``jobs``
at once, each once the notebooks it reads from have finished, the ready ones in their numbered
order (``jobs=1`` is the sequential run). One thread per notebook drives its kernel (papermill's
nbclient engine on the kernel manager the thread started, ``km=``); only the calling thread logs,
one line per start and end. A notebook that fails stops the run: the running ones are stopped
(their kernel process killed), the waiting ones never start, every kernel is shut down, and the
failure (notebook and cell) is raised once all threads have ended.

Reference: nbclient's ``NotebookClient(km=...)`` uses a kernel manager it does not own (it starts a
kernel only if the manager has none, and leaves its shutdown to the owner),
https://nbclient.readthedocs.io/en/latest/reference/nbclient.html; papermill passes extra
``execute_notebook`` keywords to that client (``papermill.engines.NBClientEngine``).
"""
from __future__ import annotations

import ast
import contextlib
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_event_loop, run_sync

from playbook.run.graph import StepNode

#: seconds a kernel may take to start and import the stack before its notebook is said not to start
START_TIMEOUT = 120.0
#: seconds a stopped thread may take to end (its kernel killed) before the run stops waiting for it
JOIN_TIMEOUT = 30.0


class StepFailed(RuntimeError):
    """A notebook of the run failed; ``node`` names it, ``error`` is its error (which names the cell)."""

    def __init__(self, node: StepNode, error: BaseException):
        super().__init__(str(error))
        self.node, self.error = node, error


@dataclass(frozen=True)
class StepDone:
    """A notebook that ran to its end, and its seconds from its start to its end."""

    node: StepNode
    seconds: float


def warm_imports(path: Path) -> list[str]:
    """The modules the notebook at ``path`` imports at the top level of its code cells, in order.

    ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (``c`` may be a module; if it is not, its import
    fails silently in the warm-up). A cell that is not plain Python (a magic) is skipped.
    """
    found: list[str] = []
    for cell in nbformat.read(str(path), as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found += [node.module] + [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
    return list(dict.fromkeys(found))


def warm_code(modules: Sequence[str]) -> str:
    """Code that imports ``modules`` and binds no name in the kernel's namespace (an import that fails is
    left to the notebook's own cell, which then names it)."""
    return ("def _playbook_warm(names):\n"
            "    import importlib\n"
            "    for name in names:\n"
            "        try:\n"
            "            importlib.import_module(name)\n"
            "        except Exception:\n"
            "            pass\n"
            f"_playbook_warm({list(modules)!r})\n"
            "del _playbook_warm\n")


class _Step(threading.Thread):
    """One notebook's thread: start and warm its kernel, wait for its turn, execute it, shut the kernel down."""

    def __init__(self, node: StepNode, kernel_name: str, extra_arguments: list[str], events: queue.Queue):
        super().__init__(name=f"playbook-{node.stem}", daemon=True)
        self.node, self.kernel_name, self.extra_arguments = node, kernel_name, extra_arguments
        self.events = events
        self.go = threading.Event()
        self.stop = threading.Event()
        self.execute: Callable[[Path, object], None] | None = None
        self.started_at = 0.0
        self._km = None
        self._km_lock = threading.Lock()

    def run(self) -> None:
        km = _Manager(kernel_name=self.kernel_name)
        outcome: BaseException | None = None
        try:
            self._run(km)
        except BaseException as exc:  # reported to the scheduling thread, which decides what it means
            outcome = exc
        # said before the shutdown: the notebooks waiting for this one need not wait for its kernel to end
        self.events.put((self, outcome))
        with contextlib.suppress(Exception):
            for kc in km.clients:  # nbclient leaves open the client of a kernel manager it does not own
                kc.stop_channels()
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=self.stop.is_set() or outcome is not None)
        ensure_event_loop().close()  # this thread's loop (jupyter_core's run_sync made one per thread)

    def _run(self, km: _Manager) -> None:
        with self._km_lock:
            if self.stop.is_set():
                return
            self._km = km
        # in the notebook's folder, as papermill's cwd= would put it (relative paths in a notebook read from there)
        run_sync(km.start_kernel)(extra_arguments=self.extra_arguments, cwd=str(self.node.path.parent))
        if self.stop.is_set():  # stopped while it started: kill() found no process to kill yet
            return
        run_sync(_warm)(km, warm_imports(self.node.path), self.stop)
        while not self.go.wait(0.2):
            if self.stop.is_set():
                return
        if not self.stop.is_set():
            assert self.execute is not None
            self.execute(self.node.path, km)

    def kill(self) -> None:
        """Stop this notebook: it will not start, and a running kernel is killed with whatever it started
        (its process group: jupyter_client starts each kernel in a session of its own). Safe from any thread:
        it only sends a signal; the notebook's own thread sees its kernel dead and shuts it down."""
        self.stop.set()
        with self._km_lock:
            km = self._km
        provisioner = getattr(km, "provisioner", None)
        process, group = getattr(provisioner, "process", None), getattr(provisioner, "pgid", None)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            if group and hasattr(os, "killpg") and group != os.getpgrp():  # never the runner's own group
                os.killpg(group, signal.SIGKILL)
            else:
                process.kill()


class _Manager(AsyncKernelManager):
    """An asynchronous kernel manager (what nbclient drives) that remembers the clients made for it: nbclient
    leaves open the client of a kernel manager it does not own, and the thread closes it."""

    def client(self, **kwargs):
        made = super().client(**kwargs)
        self.clients.append(made)
        return made

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.clients: list = []


async def _warm(km, modules: list[str], stop: threading.Event) -> None:
    """Run the imports in the kernel silently and wait for the kernel to have done them (or for ``stop``)."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=START_TIMEOUT)  # raises at once when the kernel dies
        msg_id = kc.execute(warm_code(modules), silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + START_TIMEOUT
        while not stop.is_set():
            try:
                reply = await kc.get_shell_msg(timeout=0.2)
            except queue.Empty:
                if not await km.is_alive():
                    raise RuntimeError("the kernel died while it imported the stack") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the kernel did not import the stack within {START_TIMEOUT:.0f} s") from None
                continue
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return
    finally:
        kc.stop_channels()


class Kernels:
    """The kernels of one run's notebooks (a context manager: every kernel is shut down when it ends).

    ``jobs``: notebooks executed at once; once they run, as many more kernels are started ahead, warming
    for the next notebooks. ``start()`` starts the first ``jobs`` (the runner calls it before opening
    the source); ``run()`` executes the notebooks.
    """

    def __init__(self, nodes: Sequence[StepNode], jobs: int, kernel_name: str, extra_arguments: Sequence[str] = ()):
        self.nodes, self.jobs = list(nodes), max(1, jobs)
        self.kernel_name, self.extra_arguments = kernel_name, list(extra_arguments)
        self.events: queue.Queue = queue.Queue()
        self.threads: dict[str, _Step] = {}
        self.ended: set[str] = set()

    def __enter__(self) -> Kernels:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the kernels of the first ``jobs`` notebooks and warm them, in the background.

        Only those: the runner is opening the source meanwhile, on the same cores, and its end is when
        the first notebooks can start (measured on 2 cores: warming four kernels instead of two delayed
        it by 2-3 s); the next kernels warm while the first notebooks run (``run``)."""
        self._top_up(self.jobs)

    def _live(self) -> list[_Step]:
        return [t for stem, t in self.threads.items() if stem not in self.ended]

    def _top_up(self, limit: int | None = None) -> None:
        """Start threads, in the numbered order, until ``limit`` (default ``2 * jobs``) notebooks have a kernel
        starting, waiting or running."""
        for node in self.nodes:
            if len(self._live()) >= (limit or 2 * self.jobs):
                return
            if node.stem not in self.threads:
                thread = _Step(node, self.kernel_name, self.extra_arguments, self.events)
                self.threads[node.stem] = thread
                thread.start()

    def run(self, execute: Callable[[Path, object], None], log: Callable[[str], None],
            failed: Callable[[StepNode, BaseException], None] = lambda node, error: None) -> list[StepDone]:
        """Execute every notebook with ``execute(path, kernel_manager)``; the finished ones in the order they ended.

        The first notebook that fails is passed to ``failed`` (which keeps it and says so) before the others
        are stopped; then ``StepFailed`` is raised for it, once every other one has stopped.
        """
        total = len(self.nodes)
        done: dict[str, StepDone] = {}
        finished: list[StepDone] = []
        running: set[str] = set()
        failure: StepFailed | None = None
        self._top_up()
        while len(done) < total and failure is None:
            for node in self.nodes:  # the ready ones, in their numbered order, while a slot is free
                if len(running) >= self.jobs:
                    break
                if node.stem in done or node.stem in running or any(a not in done for a in node.after):
                    continue
                self._top_up()
                thread = self.threads.get(node.stem)
                if thread is None:  # every kernel slot is taken by notebooks that cannot run yet: make room
                    thread = self.threads[node.stem] = _Step(node, self.kernel_name, self.extra_arguments, self.events)
                    thread.start()
                thread.execute, thread.started_at = execute, time.monotonic()
                thread.go.set()
                running.add(node.stem)
                log(f"[{node.number}/{total}] {node.stem} ...")
            thread, outcome = self.events.get()
            self.ended.add(thread.node.stem)
            running.discard(thread.node.stem)
            if outcome is not None:
                failure = StepFailed(thread.node, outcome)
                failed(thread.node, outcome)
                break
            if not thread.go.is_set():  # ended before its turn: only a stopped thread does
                continue
            finished.append(StepDone(thread.node, time.monotonic() - thread.started_at))
            done[thread.node.stem] = finished[-1]
            log(f"[{thread.node.number}/{total}] {thread.node.stem} ok ({finished[-1].seconds:.1f} s)")
            self._top_up()
        if failure is not None:
            stopped = sorted((self.threads[s].node for s in running), key=lambda n: n.number)
            self._stop_all()
            for node in stopped:
                log(f"[{node.number}/{total}] {node.stem} stopped: {failure.node.stem} failed")
            raise failure
        return finished

    def _stop_all(self) -> None:
        """Stop every thread whose notebook has not ended and wait for all of them to end (their kernels shut down)."""
        for stem, thread in self.threads.items():
            if stem not in self.ended:
                thread.kill()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in self.threads.values():
            thread.join(timeout=max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        """Stop what is still starting or running (a run that stopped early) and wait for every kernel to end."""
        self._stop_all()
