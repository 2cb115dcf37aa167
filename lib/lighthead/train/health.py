"""The head-at-chance check: warn when the R-CNN head has not started to classify.

Rule (also in the README, "Training health"), one function, :func:`head_health_verdict`, used
by the training-time warning (:class:`HeadHealthCheck`) and by ``tools/check_health.py``: over
the last ``window`` steps' health figures (:data:`lighthead.network.HEALTH_NAMES`) compute

- the head's balanced accuracy on its training RoIs, PER STEP ``(acc_fg + acc_bg) / 2``, then
  averaged over the steps where both are finite (a step without fg RoIs has ``acc_fg`` NaN and
  is skipped), and
- the mean spread ``score_std`` of its foreground probability over those RoIs (finite steps).

The head is *at chance* when the balanced accuracy is below ``min_balanced_acc`` (or no step
has both accuracies) or the spread is below ``min_score_std`` (or unknown). A head at chance
scores every RoI alike: its detections are ranked by the RPN alone, and the AP measures the RPN,
not the detector.

Why per step: a constant predictor (one class for all RoIs) has ``(acc_fg, acc_bg)`` of
``(1, 0)`` or ``(0, 1)`` each step, 0.5 balanced. If it flips class between steps and the
bg-predicting steps often have no fg (``(NaN, 1)``), the means of the columns are taken over
different steps and can look healthy (``(mean 1 + mean 0.5) / 2 = 0.75``); per step it is 0.5.

During training (:class:`HeadHealthCheck`) the check runs at step ``cfg.health_check_after``
(0 turns it off) and at the end, with the floors ``cfg.health_min_balanced_acc`` and
``cfg.health_min_score_std``, over the last ``WINDOW`` steps (fewer if fewer were run).
"""
import collections

import numpy as np

WINDOW = 50

# The figures a verdict reads from each row (``loss_cls`` only with a ``max_loss_cls``).
VERDICT_COLUMNS = ('acc_fg', 'acc_bg', 'score_std')

HealthVerdict = collections.namedtuple('HealthVerdict', [
    'steps',           # rows in the window
    'balanced_steps',  # of them, rows with both acc_fg and acc_bg finite
    'balanced_acc',    # mean over those rows of (acc_fg + acc_bg) / 2; NaN if none
    'score_std',       # mean of the finite score_std; NaN if none
    'loss_cls',        # mean of the finite loss_cls, or None when not checked
    'failures',        # names of the figures that missed their floor/ceiling, in rule order
])


def _finite_mean(values):
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float('nan')


def head_health_verdict(rows, window, min_balanced_acc, min_score_std, max_loss_cls=None):
    """The head-at-chance rule over the last ``window`` of ``rows`` (all if fewer or ``window``
    is None), with the floors of the config (``health_min_balanced_acc``,
    ``health_min_score_std``) or the caller's.

    ``rows``: a sequence of mappings with ``acc_fg``, ``acc_bg``, ``score_std`` (and
    ``loss_cls`` when ``max_loss_cls`` is given), values anything ``float()`` takes (CSV
    strings too; ``'nan'`` is NaN). Returns a :class:`HealthVerdict`; the head is healthy when
    its ``failures`` is empty: ``balanced_acc >= min_balanced_acc``, ``score_std >=
    min_score_std`` and, if ``max_loss_cls`` is not None, ``loss_cls <= max_loss_cls`` (a NaN
    figure fails its test). Raises ``KeyError`` for a missing figure, ``ValueError`` for one
    that is not a number.
    """
    rows = list(rows)
    if window is not None:
        rows = rows[-int(window):] if window > 0 else []
    names = VERDICT_COLUMNS + (('loss_cls',) if max_loss_cls is not None else ())
    table = np.array([[float(row[k]) for k in names] for row in rows],
                     np.float64).reshape(-1, len(names))
    acc_fg, acc_bg = table[:, 0], table[:, 1]
    both = np.isfinite(acc_fg) & np.isfinite(acc_bg)
    balanced = _finite_mean(0.5 * (acc_fg[both] + acc_bg[both]))
    spread = _finite_mean(table[:, 2])
    loss_cls = _finite_mean(table[:, 3]) if max_loss_cls is not None else None
    failures = []
    if not balanced >= min_balanced_acc:
        failures.append('balanced_acc')
    if not spread >= min_score_std:
        failures.append('score_std')
    if max_loss_cls is not None and not loss_cls <= max_loss_cls:
        failures.append('loss_cls')
    return HealthVerdict(len(rows), int(both.sum()), balanced, spread, loss_cls,
                         tuple(failures))


class HeadHealthCheck(object):
    """Feed it every step's health figures; it returns a warning text when the rule fires."""

    def __init__(self, cfg, window=WINDOW):
        self.check_after = int(cfg.health_check_after)
        self.min_balanced_acc = float(cfg.health_min_balanced_acc)
        self.min_score_std = float(cfg.health_min_score_std)
        self.window = int(window)
        self.recent = collections.deque(maxlen=self.window)

    def verdict(self):
        """:func:`head_health_verdict` of the recent steps with the config's floors."""
        return head_health_verdict(self.recent, self.window, self.min_balanced_acc,
                                   self.min_score_std)

    def summary(self):
        """``(balanced_accuracy, score_std)`` over the recent steps (NaN when unknown)."""
        verdict = self.verdict()
        return verdict.balanced_acc, verdict.score_std

    def at_chance(self):
        return bool(self.verdict().failures)

    def update(self, step, health, last_step=False):
        """Record the figures of ``step``; at the check step and the last step, return the
        warning text if the head is at chance, else None."""
        self.recent.append(health)
        if self.check_after <= 0 or step + 1 < self.check_after:
            return None
        if step + 1 != self.check_after and not last_step:
            return None
        verdict = self.verdict()
        if not verdict.failures:
            return None
        return ('WARNING: the R-CNN head is still at chance after %d steps: balanced accuracy '
                '%.3f (< %.2f?) and score spread %.4f (< %.3f?) over the last %d steps. Its '
                'detections are ranked by the RPN alone. See README "Training health".' % (
                    step + 1, verdict.balanced_acc, self.min_balanced_acc, verdict.score_std,
                    self.min_score_std, verdict.steps))
