"""Speed measurement of a Light-Head R-CNN test graph on this machine (SPEC 5.6).

The graph is the experiment's network (its ``network_desp.Network``, as
:func:`lighthead.config.load_experiment` returns it; without one, the library's
:class:`lighthead.network.LightHeadNetwork`), composed here from the network's public parts
(:func:`build_benchmark_graph`: ``backbone_features``, ``rpn``, ``proposals``,
``thin_feature_map``, ``rcnn_head``, ``detections``; a ``network_desp.py`` that overrides a part
is timed with it), with random weights (speed does not depend on them; the batch norms are
calibrated on the benchmark image so that the proposals and NMS are those of a working network,
:mod:`lighthead.utils.tf_utils.bn_calibration`). By default the graph is then frozen with its
batch norms folded into the convolutions (:mod:`lighthead.utils.tf_utils.inference_graph`), as
the Predictor runs it. Timings are medians in ms after warm-up; the runs are timed
round-robin, one of each per repetition, so drift in the machine's speed affects them alike.

* ``forward_ms`` (the paper's protocol): the prepared image tensor ``data`` float32
  [1, H, W, 3] and ``im_info`` fed, ``cls_prob`` [R, C] and ``bbox_pred`` [R, 4C] fetched.
* ``end_to_end_ms``: a BGR uint8 image in memory (0.8 times the network size, so the resize
  up-samples as for typical COCO images) is resized bilinearly to exactly H x W (the
  ``cv2.resize`` of ``resize_short_max``), normalised (:func:`normalize`), fed, and the whole
  graph run; ``detections/boxes|scores|classes`` fetched (as ``Predictor.predict_image``).
* Stages: each is timed on its own, never computed by subtraction (so none is negative): its
  sub-graph is run with the outputs of the stages before it fed (computed once, on the
  benchmark image) and its own outputs fetched:

  ==================  =================================================  ==================
  stage               what runs                                          fed
  ==================  =================================================  ==================
  backbone_ms         backbone up to the RPN and head features           data
  rpn_proposals_ms    RPN convs, decode, top-N, NMS, RoI padding         rpn_feature
  thin_feature_ms     large separable conv (the thin feature map)        head_feature
  psalign_ms          PSAlignPool                                        thin, rois
  rcnn_head_ms        FC, cls/bbox FCs, softmax                          pooled
  postprocess_ms      in-graph detection post-processing                 rois, cls_prob, ...
  preprocess_ms       resize, normalise and ``im_info`` of the raw       (Python, no graph)
                      image
  ==================  =================================================  ==================

  ``im_info`` is fed to every graph stage. A stage includes the cost of one session call and
  of copying its fed inputs in; the whole graph overlaps the RPN and the thin feature map
  (inter-op parallelism) in one call, so the stages do not add up to ``forward_ms``
  exactly (see ``stages_sum_ms``).
* Exactly ``num_rois`` RoIs: ``cfg.TEST.RPN_POST_NMS_TOP_N`` is set to ``num_rois``; if NMS
  keeps fewer proposals, :func:`pad_rois` repeats them cyclically up to ``num_rois`` rows
  (PSAlignPool and the FCs cost the same per RoI whatever its box). The number NMS kept is
  reported as ``nms_proposals``.
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
from lighthead.data.transforms import make_im_info, normalize
from lighthead.network import LightHeadNetwork
from lighthead.ops import active_implementation
from lighthead.utils.flops import count_macs
from lighthead.utils.session import session_config
from lighthead.utils.tf_utils.bn_calibration import calibrate_batch_norm
from lighthead.utils.tf_utils.inference_graph import frozen_session

STAGES = ('backbone_ms', 'rpn_proposals_ms', 'thin_feature_ms', 'psalign_ms', 'rcnn_head_ms',
          'postprocess_ms', 'preprocess_ms')
# Each graph stage: (key in STAGES, end points fed, end points fetched). im_info is always fed;
# a stage is fed what the stages before it produced, never ``data`` (after the backbone), so a
# stage that needs more than its inputs fails instead of timing the graph before it.
GRAPH_STAGES = (
    ('backbone_ms', ('data',), ('rpn_feature', 'head_feature')),
    ('rpn_proposals_ms', ('rpn_feature',), ('rois', 'roi_scores')),
    ('thin_feature_ms', ('head_feature',), ('thin',)),
    ('psalign_ms', ('thin', 'rois'), ('pooled',)),
    ('rcnn_head_ms', ('pooled',), ('cls_prob', 'bbox_pred')),
    ('postprocess_ms', ('rois', 'roi_scores', 'cls_prob', 'bbox_pred'),
     ('boxes', 'scores', 'classes')),
)
# The tensors of the benchmark graph (build_benchmark_graph), besides the inputs.
END_POINTS = ('rpn_feature', 'head_feature', 'nms_proposals', 'rois', 'roi_scores', 'thin',
              'pooled', 'cls_prob', 'bbox_pred', 'boxes', 'scores', 'classes')
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


def benchmark_network(cfg, num_rois, network_cls=None):
    """The network to time: ``network_cls()`` (an experiment's ``Network``: a
    :class:`LightHeadNetwork` subclass built with no arguments and bound to its config, which
    must be ``cfg`` or equal to it; see :func:`lighthead.config.load_experiment`), or
    ``LightHeadNetwork(cfg)`` when ``network_cls`` is None; its ``cfg`` is replaced by a copy
    whose test proposals (``TEST.RPN_POST_NMS_TOP_N``) are ``num_rois``."""
    if network_cls is None:
        net = LightHeadNetwork(cfg)
    else:
        if not (isinstance(network_cls, type) and issubclass(network_cls, LightHeadNetwork)):
            raise TypeError('the benchmark times a LightHeadNetwork subclass, not %r'
                            % (network_cls,))
        net = network_cls()
        if net.cfg is not cfg and to_json(net.cfg) != to_json(cfg):
            raise ValueError('%s.%s is bound to another config than the one benchmarked'
                             % (network_cls.__module__, network_cls.__name__))
    net.cfg = copy.deepcopy(net.cfg)
    net.cfg.TEST.RPN_POST_NMS_TOP_N = int(num_rois)
    return net


def pad_rois(rois, scores, num_rois):
    """``rois`` [P, 5] and ``scores`` [P] repeated cyclically (or cut) to exactly ``num_rois``
    rows: ``(rois [num_rois, 5], scores [num_rois])``."""
    count = tf.shape(rois)[0]
    reps = (num_rois + count - 1) // tf.maximum(count, 1)
    rois = tf.reshape(tf.tile(rois, [reps, 1])[:num_rois], [num_rois, 5])
    scores = tf.reshape(tf.tile(scores, [reps])[:num_rois], [num_rois])
    return rois, scores


def build_benchmark_graph(net, num_rois):
    """The one-image TEST graph of ``net`` (in the default graph), composed from its public
    parts as :meth:`LightHeadNetwork.inference` composes them, with the proposals padded to
    exactly ``num_rois`` RoIs (:func:`pad_rois`).

    Returns ``(inputs, end_points)``: the ``data`` and ``im_info`` placeholders, and an
    ``OrderedDict`` of :data:`END_POINTS`: ``rpn_feature``, ``head_feature``,
    ``nms_proposals`` (int32 [], how many proposals NMS kept), ``rois`` [num_rois, 5] and
    ``roi_scores`` [num_rois] (padded), ``thin``, ``pooled``, ``cls_prob`` [R, C],
    ``bbox_pred`` [R, 4C] and the detections ``boxes``, ``scores``, ``classes``. Raises
    ``ValueError`` when the network's parts do not record ``pooled`` (an overridden
    ``rcnn_head`` that does not pool through ``pool_rois``).
    """
    data, im_info, _ = net.get_inputs()
    net.end_points = parts = collections.OrderedDict()
    net.backbone_features(data, is_training=False)
    with net.head_scope():
        rpn = net.rpn(parts['rpn_feature'], 1)
        proposals, proposal_scores = net.proposals('TEST', rpn, im_info)
        nms_proposals = tf.shape(proposals)[0]
        rois, roi_scores = pad_rois(proposals, proposal_scores, num_rois)
        thin = net.thin_feature_map(parts['head_feature'])
        cls_score, bbox_pred = net.rcnn_head(thin, rois)
    if 'pooled' not in parts:
        raise ValueError('%s.rcnn_head does not pool through pool_rois (no end point '
                         "'pooled'): the benchmark cannot time PSAlignPool apart"
                         % type(net).__name__)
    cls_prob = tf.nn.softmax(cls_score, name='cls_prob')
    detections = net.detections(rois, roi_scores, cls_prob, bbox_pred, im_info)
    end_points = collections.OrderedDict([
        ('rpn_feature', parts['rpn_feature']), ('head_feature', parts['head_feature']),
        ('nms_proposals', nms_proposals), ('rois', rois), ('roi_scores', roi_scores),
        ('thin', thin), ('pooled', parts['pooled']), ('cls_prob', cls_prob),
        ('bbox_pred', bbox_pred)])
    end_points.update((k, detections[k]) for k in ('boxes', 'scores', 'classes'))
    return [data, im_info], end_points


def count_forward_gflops(cfg, height, width, num_rois, network_cls=None):
    """GFLOPs (2 per multiply-add) of the forward pass at a [1, height, width, 3] input with
    ``num_rois`` RoIs (convolutions and matrix products; see ``count_macs``); ``network_cls``:
    as :func:`benchmark_network`."""
    net = benchmark_network(cfg, num_rois, network_cls)
    with tf.Graph().as_default() as graph:
        build_benchmark_graph(net, num_rois)
    macs = count_macs(graph, input_shapes={'data': [1, height, width, 3], 'im_info': [1, 6]},
                      unknown_dim=num_rois)
    return 2.0 * macs / 1e9


class BenchmarkGraph(object):
    """The benchmark graph of ``cfg`` (:func:`build_benchmark_graph`: ``num_rois`` RoIs, a
    ``height`` x ``width`` input) in its own graph and session, with random weights (seeded)
    and calibrated batch norms; the network is ``network_cls``'s (see
    :func:`benchmark_network`; None: the library's).

    ``image`` is the raw BGR uint8 image, ``data``/``im_info`` its prepared network input,
    ``inputs`` the ``data`` and ``im_info`` tensors, ``end_points`` the graph's
    :data:`END_POINTS` (in the frozen graph with ``fold_bn``), ``values`` their values on the
    prepared input (what the stages are fed); :meth:`runners` gives the callables
    :func:`run_benchmark` times.
    """

    def __init__(self, cfg, height, width, num_rois, config, seed=0, fold_bn=True,
                 network_cls=None):
        self.cfg = cfg
        self.height, self.width = int(height), int(width)
        self.net = benchmark_network(cfg, num_rois, network_cls)
        graph = tf.Graph()
        with graph.as_default():
            tf.set_random_seed(seed)
            inputs, end_points = build_benchmark_graph(self.net, num_rois)
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
        named = collections.OrderedDict([('data', inputs[0]), ('im_info', inputs[1])])
        named.update(end_points)
        if fold_bn:  # what Predictor runs: the frozen graph with BN folded into the convs
            sess, named = frozen_session(sess, named, config)
        self.graph, self.sess = sess.graph, sess
        self.inputs = [named['data'], named['im_info']]
        self.end_points = collections.OrderedDict((k, named[k]) for k in END_POINTS)
        values = self.sess.run(self.end_points, self.feed())
        values.update(data=self.data, im_info=self.im_info)
        self.values = values

    def prepare(self, image_bgr):
        """Resize (bilinear) to exactly the network size and normalise a BGR uint8 image:
        ``(data float32 [1, height, width, 3], im_info float32 [1, 6])``."""
        resized = cv2.resize(image_bgr, (self.width, self.height),
                             interpolation=cv2.INTER_LINEAR)
        im_info = make_im_info(resized.shape[:2], float(self.height) / image_bgr.shape[0],
                               image_bgr.shape[:2])
        return normalize(resized, self.cfg.image_mean)[None], im_info

    def feed(self):
        """The feed dict of the prepared benchmark input."""
        return {self.inputs[0]: self.data, self.inputs[1]: self.im_info}

    def _tensor(self, name):
        if name in ('data', 'im_info'):
            return self.inputs[name == 'im_info']
        return self.end_points[name]

    def graph_runs(self):
        """OrderedDict name -> ``(feed names, fetches)``: each graph stage of
        :data:`GRAPH_STAGES` (fetching ops: no output copies), then ``forward`` (``cls_prob``,
        ``bbox_pred``) and ``detections`` (``boxes``, ``scores``, ``classes``) of the whole
        graph fed the prepared input."""
        out = collections.OrderedDict()
        for key, feeds, fetches in GRAPH_STAGES:
            out[key] = (('im_info',) + tuple(f for f in feeds if f != 'im_info'),
                        [self.end_points[k].op for k in fetches])
        out['forward'] = (('data', 'im_info'),
                          [self.end_points[k] for k in ('cls_prob', 'bbox_pred')])
        out['detections'] = (('data', 'im_info'),
                             [self.end_points[k] for k in ('boxes', 'scores', 'classes')])
        return out

    def runners(self):
        """OrderedDict name -> zero-argument callable: each of :meth:`graph_runs` on its fed
        values, ``preprocess_ms`` (raw image -> :meth:`prepare`) and ``end_to_end`` (raw image
        -> prepare -> detections)."""
        out = collections.OrderedDict()
        for name, (feeds, fetches) in self.graph_runs().items():
            run = self.sess.make_callable(fetches, feed_list=[self._tensor(f) for f in feeds])
            out[name] = functools.partial(run, *[self.values[f] for f in feeds])
        out['preprocess_ms'] = functools.partial(self.prepare, self.image)
        detect = self.sess.make_callable(self.graph_runs()['detections'][1],
                                         feed_list=self.inputs)

        def end_to_end():
            data, im_info = self.prepare(self.image)
            return detect(data, im_info)
        out['end_to_end'] = end_to_end
        return out

    def nms_proposals(self):
        """How many proposals NMS kept on the benchmark image (before any padding)."""
        return int(self.values['nms_proposals'])

    def profile(self, run_name, runs=3, top=15):
        """Per-op times from ``RunMetadata`` step stats (FULL_TRACE) of ``runs`` runs of
        ``run_name`` (a key of :meth:`graph_runs`), averaged per run.

        Returns ``{'by_type': [[op type, ms, count], ...], 'by_op': [[node, op type, ms], ...]}``
        sorted by time (top ``top``), times summed over ops (overlapping ops add up).
        """
        feeds, fetches = self.graph_runs()[run_name]
        feed = {self._tensor(f): self.values[f] for f in feeds}
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
    forward pass, ``stages`` each timed on its own (:data:`GRAPH_STAGES`, > 0),
    ``peak_gflops``/``peak_fraction`` None without ``peak_size``) plus ``nms_proposals``,
    ``load_average`` (the 1-minute load when the run began: other processes skew timings),
    ``psalign_impl``, ``fold_bn`` (the frozen graph with BN folded into the convolutions, as
    :class:`lighthead.eval.predictor.Predictor` runs it; False: the graph with variables),
    ``stages_sum_ms`` (the stages added up, each timed on its own: see the module docstring)
    and, with ``profile``, per-op profiles of the forward and detections graphs (see
    :meth:`BenchmarkGraph.profile`).
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
    stages = collections.OrderedDict((key, round(ms[key], 3)) for key in STAGES)
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
        ('stages_sum_ms', round(sum(ms[key] for key in STAGES), 3)),
    ])
    if profiles is not None:
        result['profile'] = profiles
    return result
