"""Inference with a trained checkpoint: the test-mode graph, one image at a time."""
import numpy as np

from lighthead.compat import tf
from lighthead.data.transforms import load_test_image, prepare_test_image, read_image
from lighthead.eval.tiling import predict_tiled
from lighthead.checkpoint import restore
from lighthead.utils.tf_utils.inference_graph import frozen_session


class Predictor(object):
    """Builds ``network.inference('TEST')`` in its own graph and restores ``checkpoint``; with
    ``fold_bn`` (default) it then runs the frozen copy of that graph whose batch norms are folded
    into the convolutions (:mod:`lighthead.utils.tf_utils.inference_graph`): the same
    detections up to float32 rounding, faster.

    ``predict*`` return dicts of numpy arrays: ``boxes`` float32 [N, 4] (x1, y1, x2, y2,
    inclusive, original-image pixels), ``scores`` float32 [N], ``classes`` int32 [N] (1..C-1).
    With ``proposals=True`` they also hold the RPN alone, from the same session run:
    ``proposal_boxes`` float32 [P, 4] (same convention) and ``proposal_scores`` float32 [P]
    (objectness), the graph's ``proposals/boxes`` and ``proposals/scores`` (the best
    ``TEST.MAX_PER_IMAGE`` proposals). ``self.proposals`` says whether they are given: False
    when not asked for, or when the network's test outputs have no ``proposal_boxes``.

    Raises :class:`lighthead.checkpoint.CheckpointNotFoundError` when ``checkpoint`` (a prefix)
    does not exist and :class:`lighthead.checkpoint.CheckpointMismatchError` when it does not
    fit the network's graph (another experiment, backbone or class count).
    """

    def __init__(self, cfg, network, checkpoint, session_config=None, fold_bn=True,
                 proposals=False):
        self.cfg = cfg
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs = network.get_inputs()
            self.outputs = network.inference('TEST', self.inputs)
            self.sess = tf.Session(config=session_config)
            try:
                restore(self.sess, checkpoint, experiment=getattr(cfg, 'exp_name', None))
            except Exception:
                self.sess.close()
                raise
        if fold_bn:
            named = {'data': self.inputs[0], 'im_info': self.inputs[1]}
            named.update(self.outputs)
            self.sess, named = frozen_session(self.sess, named, session_config)
            self.graph = self.sess.graph
            self.inputs = [named['data'], named['im_info']]
            self.outputs = {k: named[k] for k in self.outputs}
        self.proposals = bool(proposals) and all(
            k in self.outputs for k in ('proposal_boxes', 'proposal_scores'))

    def predict(self, data, im_info):
        """Detections for one prepared image: ``data`` [1, H, W, 3], ``im_info`` [1, 6]."""
        keys = ('boxes', 'scores', 'classes')
        if self.proposals:
            keys += ('proposal_boxes', 'proposal_scores')
        out = self.sess.run({k: self.outputs[k] for k in keys},
                            {self.inputs[0]: data, self.inputs[1]: im_info})
        det = {'boxes': np.asarray(out['boxes'], np.float32).reshape(-1, 4),
               'scores': np.asarray(out['scores'], np.float32).reshape(-1),
               'classes': np.asarray(out['classes'], np.int32).reshape(-1)}
        if self.proposals:
            det['proposal_boxes'] = np.asarray(out['proposal_boxes'], np.float32).reshape(-1, 4)
            det['proposal_scores'] = np.asarray(out['proposal_scores'], np.float32).reshape(-1)
        return det

    def predict_image(self, image_bgr):
        """Detections for a BGR uint8 image."""
        cfg = self.cfg
        return self.predict(*prepare_test_image(image_bgr, cfg.eval_image_short_size,
                                                cfg.eval_image_max_size, cfg.image_mean))

    def predict_file(self, path, tile=0, overlap=0):
        """(detections, raw BGR image) for an image file; ``tile > 0``: by sliding windows of
        ``tile`` original-image pixels overlapping by ``overlap`` (:mod:`lighthead.eval.tiling`,
        merged at IoU ``cfg.TEST.NMS``; each window keeps at most ``cfg.TEST.MAX_PER_IMAGE``,
        the merged image is not cut further)."""
        cfg = self.cfg
        if tile > 0:
            raw = read_image(path)
            return predict_tiled(self.predict_image, raw, tile, overlap, cfg.TEST.NMS), raw
        data, im_info, raw = load_test_image(path, cfg.eval_image_short_size,
                                             cfg.eval_image_max_size, cfg.image_mean)
        return self.predict(data, im_info), raw

    def close(self):
        self.sess.close()
