"""Check a training run's R-CNN head against the head-at-chance rule, from its losses.csv.

    python tools/check_health.py OUTPUT_DIR_or_losses.csv [--window N] [--min-balanced-acc X]
                                 [--min-score-std Y] [--max-loss-cls Z]

Reads ``OUTPUT_DIR/log/losses.csv`` (or the CSV given) and applies the rule of the training-time
warning (:func:`lighthead.train.health.head_health_verdict`, README "Training health") to the
last ``--window`` rows: the mean over those steps of the per-step balanced accuracy
``(acc_fg + acc_bg) / 2`` (steps with a NaN accuracy skipped) must be at least
``--min-balanced-acc``, the mean ``score_std`` at least ``--min-score-std``, and, if
``--max-loss-cls`` is given, the mean ``loss_cls`` at most that. The floors default to the
config's ``health_min_balanced_acc`` and ``health_min_score_std``.

Exit status: 0 healthy, 1 the head fails the rule (at chance), 2 bad input (no such file, a
missing column, a value that is not a number, fewer rows than the window).
"""
import argparse
import csv
import os
import sys

from lighthead.config import base_config
from lighthead.train.health import VERDICT_COLUMNS, WINDOW, head_health_verdict

HEALTHY, AT_CHANCE, BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """The CSV cannot be checked; the message names the file (and column or line)."""


def find_csv(path):
    """``path`` if it is a file; for a folder, its ``log/losses.csv`` (or ``losses.csv``)."""
    if os.path.isdir(path):
        for candidate in (os.path.join(path, 'log', 'losses.csv'),
                          os.path.join(path, 'losses.csv')):
            if os.path.isfile(candidate):
                return candidate
        raise BadInput('%s: no log/losses.csv in this folder' % path)
    if not os.path.isfile(path):
        raise BadInput('%s: no such file or folder' % path)
    return path


def read_window(path, columns, window):
    """``(rows_read, window_rows)``: the number of data rows of the CSV and its last ``window``
    rows as dicts of floats over ``columns`` (plus ``step`` when the CSV has it). Only those rows
    are parsed."""
    with open(path, newline='') as f:
        lines = [(i + 1, row) for i, row in enumerate(csv.reader(f)) if row]
    if not lines:
        raise BadInput('%s: empty file (no header row)' % path)
    header = [name.strip() for name in lines[0][1]]
    for name in columns:
        if name not in header:
            raise BadInput('%s: no column %r (columns: %s)' % (path, name, ', '.join(header)))
    data = lines[1:]
    if len(data) < window:
        raise BadInput('%s: %d steps, fewer than the window of %d' % (path, len(data), window))
    wanted = list(columns) + (['step'] if 'step' in header and 'step' not in columns else [])
    index = {name: header.index(name) for name in wanted}
    rows = []
    for line, cells in data[len(data) - window:]:
        row = {}
        for name, i in index.items():
            try:
                row[name] = float(cells[i])
            except (IndexError, ValueError):
                raise BadInput('%s, line %d: column %r is %s, not a number' % (
                    path, line, name, repr(cells[i]) if i < len(cells) else 'missing'))
        rows.append(row)
    return len(data), rows


def report(path, rows_read, rows, verdict, args):
    """The lines printed for a checked CSV."""
    span = ''
    if rows and 'step' in rows[0]:
        span = ' (steps %d to %d)' % (rows[0]['step'], rows[-1]['step'])
    lines = ['%s: %d steps read; window: the last %d%s' % (path, rows_read, len(rows), span)]

    def figure(label, value, sign, limit, name):
        status = 'FAIL' if name in verdict.failures else 'ok'
        lines.append('  %-45s %8.4f  %s %.4f  %s' % (label, value, sign, limit, status))

    figure('balanced accuracy (per step, %d of %d steps)' % (verdict.balanced_steps,
                                                             verdict.steps),
           verdict.balanced_acc, '>=', args.min_balanced_acc, 'balanced_acc')
    figure('score spread (mean score_std)', verdict.score_std, '>=', args.min_score_std,
           'score_std')
    if args.max_loss_cls is not None:
        figure('classification loss (mean loss_cls)', verdict.loss_cls, '<=', args.max_loss_cls,
               'loss_cls')
    if set(verdict.failures) - {'loss_cls'}:
        lines.append('UNHEALTHY (%s): the R-CNN head is at chance; its detections are ranked by '
                     'the RPN alone. See README "Training health".' % ', '.join(verdict.failures))
    elif verdict.failures:
        lines.append('UNHEALTHY (loss_cls): the mean classification loss is above its ceiling.')
    else:
        lines.append('healthy')
    return lines


def main(argv=None):
    defaults = base_config()
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('path', help='a training output folder (reads log/losses.csv) or a CSV')
    p.add_argument('--window', type=int, default=WINDOW,
                   help='the last N steps to check (default %(default)s)')
    p.add_argument('--min-balanced-acc', type=float,
                   default=float(defaults.health_min_balanced_acc),
                   help='floor of the mean per-step balanced accuracy (default %(default)s)')
    p.add_argument('--min-score-std', type=float, default=float(defaults.health_min_score_std),
                   help='floor of the mean score_std (default %(default)s)')
    p.add_argument('--max-loss-cls', type=float, default=None,
                   help='ceiling of the mean loss_cls (default: not checked)')
    args = p.parse_args(argv)
    if args.window < 1:
        p.error('--window must be at least 1')
    columns = VERDICT_COLUMNS + (('loss_cls',) if args.max_loss_cls is not None else ())
    try:
        path = find_csv(args.path)
        rows_read, rows = read_window(path, columns, args.window)
    except (BadInput, OSError, UnicodeDecodeError, csv.Error) as e:
        print('check_health.py: %s' % e, file=sys.stderr)
        return BAD_INPUT
    verdict = head_health_verdict(rows, args.window, args.min_balanced_acc, args.min_score_std,
                                  args.max_loss_cls)
    print('\n'.join(report(path, rows_read, rows, verdict, args)))
    return AT_CHANCE if verdict.failures else HEALTHY


if __name__ == '__main__':
    sys.exit(main())
