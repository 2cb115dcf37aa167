"""The training data flow: worker processes, ordered prefetching, bad records, timeouts.

``TrainDataFlow(records, cfg, num_towers, start_step=0)`` yields, forever, one list of
``num_towers`` batches per step (format: :class:`lighthead.data.batch.BatchMaker`). Step
``s`` is always the same data for the same ``cfg.seed`` and records (see
:mod:`lighthead.data.batch`), so a run resumed with ``start_step`` continues exactly.

Data epochs: ``steps_per_epoch = usable_records // (B * num_towers)`` steps make one pass
over the usable records in a fresh order; the tail that does not fill a step is left out of
that pass. The trainer's epochs (``cfg.nr_image_per_epoch`` images) are independent of
these: it only has to pass the global step it resumes from.

Workers: ``cfg.nr_dataflow`` daemon processes (0: build batches in the calling process).
Task ``k`` (tower ``k % T`` of step ``k // T``) goes to worker ``k % nr_dataflow``; at most
``max(cfg.prefetch_batches, T)`` tasks are requested ahead of the consumer; each worker
answers in request order, so batches arrive in order. A worker that dies, or no batch within
``cfg.data_timeout`` seconds, raises RuntimeError; :meth:`close` (also on errors, on leaving
a ``with`` block and at interpreter exit) terminates the workers.
"""
import atexit
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
import weakref

import cv2

from ..datasets.records import BadRecordError, BadRecordLog
from .batch import BatchMaker, batch_settings

logger = logging.getLogger(__name__)

_POLL_S = 0.5
_DEAD = ('dead', None, None)
_LIVE = weakref.WeakSet()


def _close_all():
    for flow in list(_LIVE):
        flow.close()


atexit.register(_close_all)


def _worker_main(records, settings, req_conn, res_conn, close_conns, parent_pid):
    """Worker process: answer task indices from ``req_conn`` on ``res_conn`` until told to
    stop (None), the main process goes away, or a non-record error happens."""
    for conn in close_conns:  # the main process's pipe ends, inherited through fork
        conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    cv2.setNumThreads(1)
    maker = BatchMaker(records, settings)
    while True:
        if not req_conn.poll(_POLL_S):
            if os.getppid() != parent_pid:
                return
            continue
        try:
            k = req_conn.recv()
        except EOFError:
            return
        if k is None:
            return
        try:
            msg = ('ok', k, maker.make(k))
        except BadRecordError as e:
            msg = ('bad', k, e)
        except Exception:  # reported to the main process, which stops the run
            msg = ('error', k, traceback.format_exc())
        try:
            res_conn.send(msg)
        except OSError:
            return
        if msg[0] == 'error':
            return


def _reader(conn, out_queue):
    """Main-process thread: move a worker's messages into ``out_queue``; _DEAD at EOF."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            out_queue.put(_DEAD)
            return
        out_queue.put(msg)


class _Worker(object):
    def __init__(self, index, process, requests, results, messages, thread):
        self.index = index
        self.process = process
        self.requests = requests
        self.results = results
        self.messages = messages
        self.thread = thread

    def describe(self):
        return 'data worker %d (pid %s)' % (self.index, self.process.pid)


class TrainDataFlow(object):
    """Iterator over training steps: ``next(flow)`` -> list of ``num_towers`` batch dicts.

    ``records``: validated record dicts, as ``lighthead.datasets.load_dataset`` (the only
    validation pass: annotations are not checked again here). Records without a non-ignore
    box are skipped and counted. Images that cannot be read (missing, undecodable, truncated:
    :func:`lighthead.data.transforms.read_image`) are bad records when read: they raise
    BadRecordError naming the file or, with ``cfg.skip_bad_records``, go to the run's
    ``<cfg.log_dir>/bad_records.txt`` (the log ``load_dataset`` writes too) and are replaced
    by a later record of the epoch's order.

    ``start_method``: multiprocessing start method for the workers; default ``'spawn'``. A
    forked worker hangs in its first OpenCV call when the main process has used OpenCV's
    thread pool before (the pool's threads do not survive the fork; measured with OpenCV 5.1),
    and this module imports no TensorFlow, so a fresh interpreter starts in well under a
    second.

    Attributes: ``steps_per_epoch``, ``step`` (index of the next step), ``num_usable``,
    ``num_empty`` (skipped: no usable box), ``num_bad`` (unreadable images skipped so far),
    ``total_wait`` / ``last_wait`` (seconds the consumer waited for data: in total, for the
    last step), ``worker_pids``.
    """

    def __init__(self, records, cfg, num_towers, start_step=0, start_method=None):
        self._closed = True
        self._workers = []
        self.num_towers = int(num_towers)
        self.timeout = float(cfg.data_timeout)
        if len(cfg.class_names) < 2:
            raise ValueError('cfg.class_names must list the classes (background first), got %r'
                             % (cfg.class_names,))
        self._bad_log = BadRecordLog.for_dir(cfg.log_dir) if cfg.skip_bad_records else None
        self.num_bad = 0
        usable = self._with_usable_boxes(records)
        per_step = cfg.train_batch_per_gpu * self.num_towers
        self.steps_per_epoch = len(usable) // per_step
        if self.steps_per_epoch == 0:
            raise ValueError('%d usable training records cannot fill one step of %d images '
                             '(%d towers x %d)' % (len(usable), per_step, self.num_towers,
                                                   cfg.train_batch_per_gpu))
        self.num_usable = len(usable)
        self.step = int(start_step)
        self.total_wait = 0.0
        self.last_wait = 0.0
        self._warned_truncation = False
        settings = batch_settings(cfg, self.num_towers, self.steps_per_epoch)
        self._ahead = max(int(cfg.prefetch_batches), self.num_towers)
        self._maker = None
        self._closed = False
        _LIVE.add(self)
        if cfg.nr_dataflow > 0:
            self._start_workers(usable, settings, int(cfg.nr_dataflow), start_method)
        else:
            self._maker = BatchMaker(usable, settings)

    @property
    def worker_pids(self):
        return [w.process.pid for w in self._workers]

    def _with_usable_boxes(self, records):
        """The records with a non-ignore box (no validation: the loaders did it)."""
        usable = []
        self.num_empty = 0
        for rec in records:
            if (~rec['ignore']).any():
                usable.append(rec)
            else:
                self.num_empty += 1
        if self.num_empty:
            logger.warning('data: skipped %d of %d training images without a usable '
                           '(non-ignore) box', self.num_empty, len(records))
        return usable

    def _start_workers(self, records, settings, count, start_method):
        if start_method is None:
            start_method = 'spawn'
        ctx = multiprocessing.get_context(start_method)
        main_ends = []
        for index in range(count):
            req_read, req_write = ctx.Pipe(duplex=False)
            res_read, res_write = ctx.Pipe(duplex=False)
            main_ends += [req_write, res_read]
            inherited = list(main_ends) if start_method == 'fork' else []
            process = ctx.Process(
                target=_worker_main, name='lighthead-data-%d' % index, daemon=True,
                args=(records, settings, req_read, res_write, inherited, os.getpid()))
            process.start()
            req_read.close()
            res_write.close()
            messages = queue.Queue()
            thread = threading.Thread(target=_reader, args=(res_read, messages), daemon=True,
                                      name='lighthead-data-reader-%d' % index)
            thread.start()
            self._workers.append(_Worker(index, process, req_write, res_read, messages, thread))
        self._requested = self.step * self.num_towers
        for _ in range(self._ahead):
            self._request_next()

    def _request_next(self):
        k = self._requested
        worker = self._workers[k % len(self._workers)]
        try:
            worker.requests.send(k)
        except OSError:
            raise self._died(worker)
        self._requested += 1

    def _died(self, worker):
        worker.process.join(1.0)
        return RuntimeError('%s died (exit code %s); the data pipeline stopped'
                            % (worker.describe(), worker.process.exitcode))

    def _receive(self, k):
        worker = self._workers[k % len(self._workers)]
        deadline = time.time() + self.timeout
        while True:
            try:
                msg = worker.messages.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if time.time() > deadline:
                    raise RuntimeError('no batch from %s within data_timeout = %g s'
                                       % (worker.describe(), self.timeout))
        if msg is _DEAD:
            raise self._died(worker)
        kind, got, payload = msg
        if got != k:
            raise RuntimeError('%s answered task %s, expected %d' % (worker.describe(), got, k))
        if kind == 'bad':
            raise payload
        if kind == 'error':
            raise RuntimeError('%s failed on step %d:\n%s' % (
                worker.describe(), k // self.num_towers, payload))
        self._request_next()
        return payload

    def __iter__(self):
        return self

    def __next__(self):
        if self._closed:
            raise RuntimeError('TrainDataFlow is closed')
        try:
            start = time.time()
            results = []
            for tower in range(self.num_towers):
                k = self.step * self.num_towers + tower
                results.append(self._maker.make(k) if self._maker else self._receive(k))
            self.last_wait = time.time() - start
            self.total_wait += self.last_wait
        except BaseException:
            self.close()
            raise
        batches = []
        for batch, bad, truncated in results:
            for err in bad:
                if self._bad_log(err):
                    self.num_bad += 1
                    logger.warning('data: skipped bad record: %s', err)
            if truncated and not self._warned_truncation:
                self._warned_truncation = True
                logger.warning('data: an image has more than max_boxes_of_image boxes; only '
                               'the first ones are used (warned once)')
            batches.append(batch)
        self.step += 1
        return batches

    def close(self):
        """Terminate the workers (idempotent, never blocks for long)."""
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        for w in self._workers:
            if w.process.is_alive():
                w.process.terminate()
        for w in self._workers:
            w.process.join(1.0)
            if w.process.is_alive():  # e.g. stopped: SIGTERM waits, SIGKILL does not
                w.process.kill()
                w.process.join(1.0)
        for w in self._workers:
            w.thread.join(2.0)
            w.requests.close()
            w.results.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
