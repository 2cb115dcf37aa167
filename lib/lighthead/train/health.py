"""The head-at-chance check: warn when the R-CNN head has not started to classify.

Rule (also in the README): from step ``cfg.health_check_after`` on (0 turns the check off), at
that step and at the end of training, take the last ``WINDOW`` steps' health figures
(:data:`lighthead.network.HEALTH_NAMES`) and compute

- the head's balanced accuracy ``(mean acc_fg + mean acc_bg) / 2`` on its training RoIs, and
- the mean spread ``score_std`` of its foreground probability over those RoIs.

The head is *at chance* when the balanced accuracy is below ``cfg.health_min_balanced_acc``
or the spread is below ``cfg.health_min_score_std``. A head at chance scores every RoI alike:
its detections are ranked by the RPN alone, and the AP measures the RPN, not the detector.
"""
import collections

import numpy as np

WINDOW = 50


class HeadHealthCheck(object):
    """Feed it every step's health figures; it returns a warning text when the rule fires."""

    def __init__(self, cfg, window=WINDOW):
        self.check_after = int(cfg.health_check_after)
        self.min_balanced_acc = float(cfg.health_min_balanced_acc)
        self.min_score_std = float(cfg.health_min_score_std)
        self.recent = collections.deque(maxlen=window)

    def summary(self):
        """``(balanced_accuracy, score_std)`` over the recent steps (NaN when unknown)."""
        rows = np.array([[h['acc_fg'], h['acc_bg'], h['score_std']] for h in self.recent],
                        np.float64).reshape(-1, 3)
        with np.errstate(invalid='ignore'):
            means = [np.nanmean(c) if np.isfinite(c).any() else np.nan for c in rows.T]
        return 0.5 * (means[0] + means[1]), means[2]

    def at_chance(self):
        balanced, spread = self.summary()
        return not (balanced >= self.min_balanced_acc and spread >= self.min_score_std)

    def update(self, step, health, last_step=False):
        """Record the figures of ``step``; at the check step and the last step, return the
        warning text if the head is at chance, else None."""
        self.recent.append(health)
        if self.check_after <= 0 or step + 1 < self.check_after:
            return None
        if step + 1 != self.check_after and not last_step:
            return None
        if not self.at_chance():
            return None
        balanced, spread = self.summary()
        return ('WARNING: the R-CNN head is still at chance after %d steps: balanced accuracy '
                '%.3f (< %.2f?) and score spread %.4f (< %.3f?) over the last %d steps. Its '
                'detections are ranked by the RPN alone. See README "Training health".' % (
                    step + 1, balanced, self.min_balanced_acc, spread, self.min_score_std,
                    len(self.recent)))
