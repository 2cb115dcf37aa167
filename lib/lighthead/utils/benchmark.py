"""Speed measurement of a Light-Head R-CNN test graph on this machine (SPEC 5.6).

The graph is the experiment's network (its ``network_desp.Network``, as
:func:`lighthead.config.load_experiment` returns it; without one, the library's
:class:`lighthead.network.LightHeadNetwork`) with random weights (speed does not depend on
them; the batch norms are calibrated on the benchmark image so that the proposals and NMS are
those of a working network, :mod:`lighthead.utils.tf_utils.bn_calibration`), built through :class:`BenchmarkMixin`, mixed in ahead of that class: it only records
intermediate tensors and fixes the RoI count (below). By default the graph is then
frozen with its batch norms folded into the convolutions
(:mod:`lighthead.utils.tf_utils.inference_graph`), as the Predictor runs it. Timings are
medians in ms after warm-up; the targets are run round-robin, one of each per repetition, so
drift in the machine's speed affects them alike.

* ``forward_ms`` (the paper's protocol): the prepared image tensor ``data`` float32
  [1, H, W, 3] and ``im_info`` fed, ``cls_prob`` [R, C] and ``bbox_pred`` [R, 4C] fetched.
* ``end_to_end_ms``: a BGR uint8 image in memory (0.8 times the network size, so the resize
  up-samples as for typical COCO images) is resized bilinearly to exactly H x W (the
  ``cv2.resize`` of ``resize_short_max``), normalised (:func:`normalize`), fed, and the whole
  graph run; ``detections/boxes|scores|classes`` fetched (as ``Predictor.predict_image``).
* Stages, by fetching sub-graphs cumulatively and subtracting medians (so a stage is the
  wall time it adds, not the sum of its ops' times; with inter-op parallelism the RPN and the
  thin feature map overlap, and a small stage can read slightly negative from noise):

  ==================  ==========================================================
  backbone_ms         the RPN feature and the head feature (stage3, stage4)
  rpn_proposals_ms    + RPN head, decode, top-N, NMS, RoI padding
  thin_feature_ms     + large separable conv (the thin feature map)
  psalign_ms          + PSAlignPool
  rcnn_head_ms        + FC, cls/bbox FCs, softmax            (total = forward_ms)
  postprocess_ms      + in-graph detection post-processing   (image tensor in)
  preprocess_ms       end_to_end_ms minus the above: resize, normalise, feed
  ==================  ==========================================================

* Exactly ``num_rois`` RoIs: ``cfg.TEST.RPN_POST_NMS_TOP_N`` is set to ``num_rois``; if NMS
  keeps fewer proposals, :class:`BenchmarkMixin` repeats them cyclically up to
  ``num_rois`` rows (PSAlignPool and the FCs cost the same per RoI whatever its box). The
  number NMS kept is reported as ``nms_proposals``.
* ``gflops``: :func:`lighthead.utils.flops.count_macs` of the forward graph with a fixed
  [1, H, W, 3] input and R = ``num_rois``, times 2 (one multiply-add = 2 FLOPs).
* Peak: the median time of a float32 ``tf.matmul`` of two ``size x size`` matrices under
  the same session settings; ``peak_fraction = gflops / forward seconds / peak_gflops``.
* bf16: grappler's oneDNN auto mixed precision
  (``rewrite_options.auto_mixed_precision_onednn_bfloat16 = ON``, TF 2.x only).
"""
import collections
import copy
import functools
import os
import time

import cv2
import numpy as np

from lighthead.compat import tf
from lighthead.config import to_json
from lighthead.data.transforms import normalize
from lighthead.network import LightHeadNetwork
from lighthead.ops import active_implementation
from lighthead.utils.flops import count_macs
from lighthead.utils.session import session_config
from lighthead.utils.tf_utils.bn_calibration import calibrate_batch_norm
from lighthead.utils.tf_utils.inference_graph import frozen_session

STAGES = ('backbone_ms', 'rpn_proposals_ms', 'thin_feature_ms', 'psalign_ms', 'rcnn_head_ms',
          'postprocess_ms', 'preprocess_ms')
# The timed runner whose median ends each stage (see BenchmarkGraph.runners).
_CUMULATIVE = ('backbone', 'rpn_proposals', 'thin_feature', 'psalign', 'forward', 'detections',
               'end_to_end')
# Raw image size relative to the network input for end-to-end runs.
RAW_IMAGE_FACTOR = 0.8


def cpu_description():
    """'<model name>, <n> logical CPUs, <ISA flags that matter for speed>' (Linux)."""
    model, flags = 'unknown CPU', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                key = key.strip()
                if key == 'model name':
                    model = value.strip()
                elif key == 'flags':
                    flags = set(value.split())
    except IOError:
        pass
    wanted = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_tile')
    return '%s, %d logical CPUs, %s' % (model, os.cpu_count() or 0,
                                         ' '.join(f for f in wanted if f in flags) or 'no AVX')


def median_times_ms(runners, warmup, repeat):
    """Median wall time (ms) of each zero-argument callable in the dict ``runners``.

    Each round calls every runner once, in order; ``warmup`` rounds are discarded.
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    times = collections.OrderedDict((name, []) for name in runners)
    for _ in range(repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return collections.OrderedDict((k, 1000.0 * float(np.median(v))) for k, v in times.items())


def measure_peak_gflops(threads, size=4096, warmup=1, repeat=5):
    """float32 GFLOP/s of a ``size x size`` by ``size x size`` ``tf.matmul`` (2 size^3 FLOPs),
    median over ``repeat`` runs, with ``threads`` intra- and inter-op threads."""
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        a = tf.Variable(tf.random_uniform([size, size]), trainable=False)
        b = tf.Variable(tf.random_uniform([size, size]), trainable=False)
        product = tf.matmul(a, b)
        with tf.Session(config=session_config(threads)) as sess:
            sess.run(tf.global_variables_initializer())
            run = sess.make_callable(product.op)
            ms = median_times_ms({'matmul': run}, warmup, repeat)['matmul']
    return 2.0 * size ** 3 / (ms / 1000.0) / 1e9


class BenchmarkMixin(object):
    """Mixed in ahead of :class:`LightHeadNetwork` or a subclass of it (an experiment's
    ``Network``): the network yields exactly ``num_rois`` RoIs and records the tensors that end
    each stage (``self.taps``); the layers and their computation are the network's own.

    Call :meth:`prepare_benchmark` once the network is constructed.
    """

    def prepare_benchmark(self, num_rois):
        """Fix the RoI count: ``self.cfg`` becomes a copy whose test proposals are
        ``num_rois`` (:func:`_benchmark_cfg`); empties ``self.taps``."""
        self.cfg = _benchmark_cfg(self.cfg, num_rois)
        self.num_rois = int(num_rois)
        self.taps = {}

    def _rpn_head(self, feat):
        self.taps['rpn_feature'] = feat
        return super(BenchmarkMixin, self)._rpn_head(feat)

    def _proposals(self, mode, batch, rpn_prob, rpn_deltas, anchors, im_info):
        rois = super(BenchmarkMixin, self)._proposals(
            mode, batch, rpn_prob, rpn_deltas, anchors, im_info)
        count = tf.shape(rois)[0]
        self.taps['nms_proposals'] = count
        reps = (self.num_rois + count - 1) // tf.maximum(count, 1)
        rois = tf.reshape(tf.tile(rois, [reps, 1])[:self.num_rois], [self.num_rois, 5])
        self.taps['rois'] = rois
        return rois

    def _large_separable_conv(self, feat):
        self.taps['head_feature'] = feat
        thin = super(BenchmarkMixin, self)._large_separable_conv(feat)
        self.taps['thin'] = thin
        return thin

    def _rcnn_head(self, thin, rois):
        graph = tf.get_default_graph()
        first = len(graph.get_operations())
        outputs = super(BenchmarkMixin, self)._rcnn_head(thin, rois)
        # The first product of the head reads the pooled features (flattened).
        matmul = [op for op in graph.get_operations()[first:] if op.type == 'MatMul'][0]
        self.taps['pooled'] = matmul.inputs[0]
        return outputs


# What BenchmarkMixin records (every one is needed by the stage timings).
TAPS = ('rpn_feature', 'nms_proposals', 'rois', 'head_feature', 'thin', 'pooled')


class BenchmarkNetwork(BenchmarkMixin, LightHeadNetwork):
    """The library's :class:`LightHeadNetwork` of ``cfg`` with :class:`BenchmarkMixin`."""

    def __init__(self, cfg, num_rois):
        super(BenchmarkNetwork, self).__init__(cfg)
        self.prepare_benchmark(num_rois)


def _benchmark_cfg(cfg, num_rois):
    """A copy of ``cfg`` whose test proposals are ``num_rois``."""
    cfg = copy.deepcopy(cfg)
    cfg.TEST.RPN_POST_NMS_TOP_N = int(num_rois)
    return cfg


def benchmark_network(cfg, num_rois, network_cls=None):
    """The network to time, with :class:`BenchmarkMixin` (RoI count ``num_rois``).

    ``network_cls``: an experiment's ``Network`` (a :class:`LightHeadNetwork` subclass built
    with no arguments and bound to its config, which must be ``cfg`` or equal to it; see
    :func:`lighthead.config.load_experiment`): the network is an instance of a subclass of it
    that has the mixin first. ``None``: :class:`BenchmarkNetwork` of ``cfg``.
    """
    if network_cls is None:
        return BenchmarkNetwork(cfg, num_rois)
    if not (isinstance(network_cls, type) and issubclass(network_cls, LightHeadNetwork)):
        raise TypeError('the benchmark times a LightHeadNetwork subclass, not %r'
                        % (network_cls,))
    cls = type('Benchmark' + network_cls.__name__, (BenchmarkMixin, network_cls),
               {'__module__': __name__, '__doc__': BenchmarkMixin.__doc__})
    net = cls()
    if net.cfg is not cfg and to_json(net.cfg) != to_json(cfg):
        raise ValueError('%s.%s is bound to another config than the one benchmarked'
                         % (network_cls.__module__, network_cls.__name__))
    net.prepare_benchmark(num_rois)
    return net


def count_forward_gflops(cfg, height, width, num_rois, network_cls=None):
    """GFLOPs (2 per multiply-add) of the forward pass at a [1, height, width, 3] input with
    ``num_rois`` RoIs (convolutions and matrix products; see ``count_macs``); ``network_cls``:
    as :func:`benchmark_network`."""
    net = benchmark_network(cfg, num_rois, network_cls)
    with tf.Graph().as_default() as graph:
        net.inference('TEST', net.get_inputs())
    macs = count_macs(graph, input_shapes={'data': [1, height, width, 3], 'im_info': [1, 6]},
                      unknown_dim=num_rois)
    return 2.0 * macs / 1e9


class BenchmarkGraph(object):
    """The test graph of ``cfg`` (``num_rois`` RoIs, a ``height`` x ``width`` input) in its own
    graph and session, with random weights (seeded); the network is ``network_cls``'s (see
    :func:`benchmark_network`; None: the library's).

    ``image`` is the raw BGR uint8 image, ``data``/``im_info`` its prepared network input;
    :meth:`runners` gives the callables :func:`run_benchmark` times.
    """

    def __init__(self, cfg, height, width, num_rois, config, seed=0, fold_bn=True,
                 network_cls=None):
        self.cfg = cfg
        self.height, self.width = int(height), int(width)
        self.net = benchmark_network(cfg, num_rois, network_cls)
        graph = tf.Graph()
        with graph.as_default():
            tf.set_random_seed(seed)
            inputs = self.net.get_inputs()
            detections = self.net.inference('TEST', inputs)
            outputs = self.net.get_test_collection()
            missing = [k for k in TAPS if k not in self.net.taps]
            if missing:
                raise ValueError('%s builds its test graph without going through the '
                                 "LightHeadNetwork steps the benchmark times (no tap %s)"
                                 % (type(self.net).__name__, ', '.join(missing)))
            sess = tf.Session(config=config)
            sess.run(tf.global_variables_initializer())
        rng = np.random.RandomState(seed)
        raw_h = int(round(self.height * RAW_IMAGE_FACTOR))
        raw_w = int(round(self.width * RAW_IMAGE_FACTOR))
        self.image = rng.randint(0, 256, (raw_h, raw_w, 3)).astype(np.uint8)
        self.data, self.im_info = self.prepare(self.image)
        # Random weights with trained-scale activations, so the proposals and NMS are not
        # degenerate (a saturated RPN puts every box on the image border).
        calibrate_batch_norm(sess, {inputs[0]: self.data, inputs[1]: self.im_info})
        named = {'in/data': inputs[0], 'in/im_info': inputs[1]}
        named.update(('det/' + k, detections[k]) for k in ('boxes', 'scores', 'classes'))
        named.update(('out/' + k, outputs[k]) for k in ('cls_prob', 'bbox_pred'))
        named.update(('tap/' + k, v) for k, v in self.net.taps.items())
        if fold_bn:  # what Predictor runs: the frozen graph with BN folded into the convs
            sess, named = frozen_session(sess, named, config)
        self.graph, self.sess = sess.graph, sess
        self.inputs = [named['in/data'], named['in/im_info']]
        self.detections = {k: named['det/' + k] for k in ('boxes', 'scores', 'classes')}
        self.outputs = {k: named['out/' + k] for k in ('cls_prob', 'bbox_pred')}
        self.taps = {k: named['tap/' + k] for k in self.net.taps}

    def prepare(self, image_bgr):
        """Resize (bilinear) to exactly the network size and normalise a BGR uint8 image:
        ``(data float32 [1, height, width, 3], im_info float32 [1, 6])``."""
        resized = cv2.resize(image_bgr, (self.width, self.height),
                             interpolation=cv2.INTER_LINEAR)
        im_info = np.array([[self.height, self.width, float(self.height) / image_bgr.shape[0],
                             image_bgr.shape[0], image_bgr.shape[1], 0]], np.float32)
        return normalize(resized, self.cfg.image_mean)[None], im_info

    def _callable(self, fetches):
        return self.sess.make_callable(fetches, feed_list=self.inputs[:2])

    def stage_fetches(self):
        """OrderedDict name -> fetches of the cumulative sub-graphs (ops: no output copies)."""
        t, o = self.taps, self.outputs
        return collections.OrderedDict([
            ('backbone', [t['rpn_feature'].op, t['head_feature'].op]),
            ('rpn_proposals', [t['head_feature'].op, t['rois'].op]),
            ('thin_feature', [t['rois'].op, t['thin'].op]),
            ('psalign', [t['pooled'].op]),
            ('forward', [o['cls_prob'], o['bbox_pred']]),
            ('detections', [self.detections[k] for k in ('boxes', 'scores', 'classes')]),
        ])

    def runners(self):
        """OrderedDict name -> zero-argument callable: the stage fetches on the prepared
        input, then ``end_to_end`` (raw image -> prepare -> detections)."""
        out = collections.OrderedDict()
        for name, fetches in self.stage_fetches().items():
            out[name] = functools.partial(self._callable(fetches), self.data, self.im_info)
        detect = self._callable(self.stage_fetches()['detections'])

        def end_to_end():
            data, im_info = self.prepare(self.image)
            return detect(data, im_info)
        out['end_to_end'] = end_to_end
        return out

    def nms_proposals(self):
        """How many proposals NMS kept on the benchmark image (before any padding)."""
        return int(self.sess.run(self.taps['nms_proposals'],
                                 {self.inputs[0]: self.data, self.inputs[1]: self.im_info}))

    def profile(self, fetch_name, runs=3, top=15):
        """Per-op times from ``RunMetadata`` step stats (FULL_TRACE) of ``runs`` runs of the
        fetches ``fetch_name`` (a key of :meth:`stage_fetches`), averaged per run.

        Returns ``{'by_type': [[op type, ms, count], ...], 'by_op': [[node, op type, ms], ...]}``
        sorted by time (top ``top``), times summed over ops (overlapping ops add up).
        """
        fetches = self.stage_fetches()[fetch_name]
        feed = {self.inputs[0]: self.data, self.inputs[1]: self.im_info}
        options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
        by_type = collections.defaultdict(lambda: [0.0, 0])
        by_op = collections.defaultdict(float)
        node_type = {}
        self.sess.run(fetches, feed)
        for _ in range(runs):
            meta = tf.RunMetadata()
            self.sess.run(fetches, feed, options=options, run_metadata=meta)
            for dev in meta.step_stats.dev_stats:
                for node in dev.node_stats:
                    if node.node_name in ('_SOURCE', '_SINK'):
                        continue
                    op_type = _op_type(node)
                    ms = (node.all_end_rel_micros or node.op_end_rel_micros) / 1000.0 / runs
                    by_type[op_type][0] += ms
                    by_type[op_type][1] += 1
                    by_op[node.node_name] += ms
                    node_type[node.node_name] = op_type
        types = sorted(by_type.items(), key=lambda kv: -kv[1][0])[:top]
        ops = sorted(by_op.items(), key=lambda kv: -kv[1])[:top]
        return {'by_type': [[k, round(v[0], 3), v[1] // runs] for k, v in types],
                'by_op': [[k, node_type[k], round(v, 3)] for k, v in ops]}

    def close(self):
        self.sess.close()


def _op_type(node_stats):
    """Op type of a step-stats node (its label reads 'name = Type(inputs)')."""
    label = node_stats.timeline_label
    if '=' not in label:
        return node_stats.node_name
    return label.split('=', 1)[1].strip().split('(', 1)[0]


def run_benchmark(cfg, height, width, num_rois=None, threads=None, precision='fp32',
                  peak_size=None, warmup=3, repeat=10, profile=False, fold_bn=True,
                  network_cls=None):
    """Measure ``cfg``'s test graph at a ``height`` x ``width`` network input.

    ``network_cls``: the experiment's ``Network`` bound to ``cfg`` (as
    :func:`lighthead.config.load_experiment` returns them), whose graph is timed; None: the
    library's :class:`LightHeadNetwork` of ``cfg``.

    ``num_rois`` defaults to ``cfg.TEST.RPN_POST_NMS_TOP_N``; ``threads`` to the logical CPU
    count; ``peak_size`` (e.g. 4096) measures the matmul peak at that size (None: not).
    Returns the SPEC 5.6 dict (times in ms, ``fps = 1000 / forward_ms``, ``gflops`` of the
    forward pass,
    ``peak_gflops``/``peak_fraction`` None without ``peak_size``) plus ``nms_proposals``,
    ``load_average`` (the 1-minute load when the run began: other processes skew timings),
    ``psalign_impl``, ``fold_bn`` (the frozen graph with BN folded into the convolutions, as
    :class:`lighthead.eval.predictor.Predictor` runs it; False: the graph with variables) and,
    with ``profile``, per-op profiles of the forward and end-to-end
    graphs (see :meth:`BenchmarkGraph.profile`).
    """
    load_before = os.getloadavg()[0]
    num_rois = int(num_rois or cfg.TEST.RPN_POST_NMS_TOP_N)
    threads = int(threads or os.cpu_count() or 1)
    config = session_config(threads, precision)
    gflops = count_forward_gflops(cfg, height, width, num_rois, network_cls)
    bench = BenchmarkGraph(cfg, height, width, num_rois, config, fold_bn=fold_bn,
                           network_cls=network_cls)
    try:
        ms = median_times_ms(bench.runners(), warmup, repeat)
        nms_proposals = bench.nms_proposals()
        profiles = None
        if profile:
            profiles = {'forward': bench.profile('forward'),
                        'detections': bench.profile('detections')}
    finally:
        bench.close()
    stages = collections.OrderedDict()
    previous = 0.0
    for key, name in zip(STAGES, _CUMULATIVE):
        stages[key] = round(ms[name] - previous, 3)
        previous = ms[name]
    forward_ms = ms['forward']
    peak = peak_size is not None
    peak_gflops = measure_peak_gflops(threads, peak_size, warmup, repeat) if peak else None
    result = collections.OrderedDict([
        ('forward_ms', round(forward_ms, 3)),
        ('end_to_end_ms', round(ms['end_to_end'], 3)),
        ('fps', round(1000.0 / forward_ms, 2)),
        ('gflops', round(gflops, 3)),
        ('stages', stages),
        ('peak_gflops', round(peak_gflops, 1) if peak else None),
        ('peak_fraction', round(gflops / (forward_ms / 1000.0) / peak_gflops, 4) if peak
         else None),
        ('height', int(height)), ('width', int(width)), ('rois', num_rois),
        ('threads', threads), ('precision', precision),
        ('tf_version', tf.VERSION), ('cpu', cpu_description()),
        ('nms_proposals', nms_proposals),
        ('load_average', round(load_before, 2)),
        ('psalign_impl', active_implementation(cfg.psalign_impl)),
        ('fold_bn', bool(fold_bn)),
    ])
    if profiles is not None:
        result['profile'] = profiles
    return result
