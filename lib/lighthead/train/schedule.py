"""The training schedule: warm-up, epochs and learning rate as functions of the global step.

As the original, epoch 0 starts with ``warm_iter`` extra iterations whose learning rate rises
linearly from ``warm_factor * lr`` towards ``lr``; every epoch then runs ``iters_per_epoch``
iterations. The learning rate of a step is the per-device rate of its epoch
(``config.lr_at_epoch``) times the number of towers.
"""
from lighthead.config import lr_at_epoch


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
