"""The training schedule: warm-up, epochs and learning rate as functions of the global step.

As the original, epoch 0 starts with ``warm_iter`` extra iterations whose learning rate rises
linearly from ``warm_factor * lr`` towards ``lr``; every epoch then runs ``iters_per_epoch``
iterations. The learning rate of a step is the per-device rate of its epoch
(:func:`lr_at_epoch`) times the number of towers.

``lr_steps`` is a list of ``[epoch bound, lr factor]``: 0-based epoch ``e`` trains at
``basic_lr * factor`` of the first bound greater than ``e``. The bounds increase, and the last
one is at least ``max_epoch`` so that every epoch has its step (:func:`check_lr_steps`, applied
by :func:`lighthead.config.finalize`); a last bound beyond ``max_epoch`` is a schedule cut short
(e.g. ``max_epoch=1`` for a quick run).
"""


def check_lr_steps(lr_steps, max_epoch):
    """Raises ``ValueError`` naming ``lr_steps`` unless its bounds increase strictly and the
    last one is ``>= max_epoch`` (``lr_steps``: ``[[bound, factor], ...]``, checked pairs)."""
    bounds = [int(bound) for bound, _ in lr_steps]
    if not bounds:
        raise ValueError('lr_steps: expected a non-empty list of [epoch bound, lr factor], '
                         'got %r' % (lr_steps,))
    for prev, nxt in zip(bounds, bounds[1:]):
        if nxt <= prev:
            raise ValueError('lr_steps: expected increasing epoch bounds, got %r (%d after %d)'
                             % (lr_steps, nxt, prev))
    if bounds[-1] < max_epoch:
        raise ValueError(
            'lr_steps: expected the last epoch bound >= max_epoch = %d (every epoch needs a '
            'learning-rate step), got %r; extend lr_steps or lower max_epoch'
            % (max_epoch, lr_steps))


def lr_at_epoch(cfg, epoch):
    """Per-device learning rate of 0-based ``epoch``: ``cfg.basic_lr`` times the factor of the
    first ``cfg.lr_steps`` bound greater than ``epoch`` (past the last bound, the last factor)."""
    for bound, factor in cfg.lr_steps:
        if epoch < bound:
            return cfg.basic_lr * factor
    return cfg.basic_lr * cfg.lr_steps[-1][1]


class Schedule(object):
    def __init__(self, cfg, num_towers, iters_per_epoch):
        if iters_per_epoch < 1:
            raise ValueError('iters_per_epoch must be >= 1, got %d' % iters_per_epoch)
        self.cfg = cfg
        self.num_towers = num_towers
        self.iters_per_epoch = int(iters_per_epoch)
        self.warm_iter = int(cfg.warm_iter)
        self.total_steps = self.warm_iter + self.iters_per_epoch * int(cfg.max_epoch)

    def epoch_start(self, epoch):
        """Global step at which 0-based ``epoch`` starts."""
        return 0 if epoch == 0 else self.warm_iter + epoch * self.iters_per_epoch

    def epoch_of(self, step):
        """0-based epoch that ``step`` belongs to."""
        if step < self.warm_iter:
            return 0
        return min((step - self.warm_iter) // self.iters_per_epoch, int(self.cfg.max_epoch) - 1)

    def is_epoch_end(self, step):
        """True when ``step`` is the last iteration of its epoch."""
        return step + 1 == self.epoch_start(self.epoch_of(step) + 1)

    def lr(self, step):
        """Learning rate applied at global ``step`` (all towers together)."""
        base = lr_at_epoch(self.cfg, self.epoch_of(step)) * self.num_towers
        if step < self.warm_iter:
            f = self.cfg.warm_factor
            return base * (f + (1.0 - f) * step / float(self.warm_iter))
        return base
