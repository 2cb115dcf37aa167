"""Bad input to the command-line tools gives one clear line naming the file, the record or the
argument at fault (issue 17: items 5, 9 and 10; item 2, predict.py, is in test_tools.py)."""
import json
import logging
import os
import subprocess
import sys

import pytest

from lighthead.config import REPO_ROOT, make_config
from lighthead.datasets import load_dataset
from lighthead.datasets.synthetic import CLASS_NAMES

TOOLS = os.path.join(REPO_ROOT, 'tools')
QUICKSTART = os.path.join(REPO_ROOT, 'experiments', 'quickstart')


def run(args, cwd=REPO_ROOT):
    env = dict(os.environ)
    env.pop('OUTPUT_DIR', None)  # it would win over --output
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [os.path.join(REPO_ROOT, 'lib'),
                                                      env.get('PYTHONPATH')]))
    return subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300)


def write(path, obj):
    path = str(path)
    with open(path, 'w') as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def gt_dict(bbox=(10, 20, 30, 40)):
    return {'images': [{'id': 1, 'file_name': 'a.jpg', 'height': 100, 'width': 200},
                       {'id': 2, 'file_name': 'b.jpg', 'height': 100, 'width': 200}],
            'annotations': [{'id': 1, 'image_id': 1, 'bbox': list(bbox), 'area': 1200,
                             'category_id': 3, 'iscrowd': 0},
                            {'id': 2, 'image_id': 2, 'bbox': [5, 5, 20, 20], 'area': 400,
                             'category_id': 3, 'iscrowd': 0}],
            'categories': [{'id': 3, 'name': 'cat'}]}


def results(image_id=1, category_id=3, bbox=(10, 20, 30, 40)):
    return [{'image_id': 2, 'category_id': 3, 'bbox': [5, 5, 20, 20], 'score': 0.9},
            {'image_id': image_id, 'category_id': category_id, 'bbox': list(bbox),
             'score': 0.8}]


def last_line(proc):
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else ''


# -- item 9: tools/evaluate.py ------------------------------------------------------------------

def test_evaluate_good_input_still_works(tmp_path):
    gt = write(tmp_path / 'gt.json', gt_dict())
    dt = write(tmp_path / 'dt.json', results())
    proc = run([os.path.join(TOOLS, 'evaluate.py'), '--gt', gt, '--dt', dt, '--out',
                tmp_path / 'm.json'])
    assert proc.returncode == 0, proc.stderr
    with open(str(tmp_path / 'm.json')) as f:
        assert json.load(f)['AP'] == pytest.approx(1.0)


@pytest.mark.parametrize('case', ['gt_syntax', 'dt_syntax', 'unknown_image', 'unknown_category',
                                  'nan_gt_box', 'dt_not_list', 'nan_score'])
def test_evaluate_bad_input_names_file_and_record(tmp_path, case):
    gt, dt = gt_dict(), results()
    expected = []
    if case == 'gt_syntax':
        gt = '{"images": [}'
        expected = ['gt.json', 'malformed JSON']
    elif case == 'dt_syntax':
        dt = '[{"image_id": 1,'
        expected = ['dt.json', 'malformed JSON']
    elif case == 'unknown_image':
        dt = results(image_id=999)
        expected = ['dt.json', 'detection 1', 'image_id 999 is not an image of the ground '
                    'truth', 'gt.json']
    elif case == 'unknown_category':
        dt = results(category_id=1)
        expected = ['dt.json', 'detection 1', 'category_id 1 is not a category', '[3]']
    elif case == 'nan_gt_box':
        gt = gt_dict(bbox=(float('nan'), 20, 30, 40))
        expected = ['gt.json', "record 'a.jpg'", 'non-finite']
    elif case == 'dt_not_list':
        dt = gt_dict()
        expected = ['dt.json', 'must be a JSON list']
    elif case == 'nan_score':
        dt = results()
        dt[1]['score'] = float('nan')
        expected = ['dt.json', 'detection 1', 'score nan']
    gt_path = write(tmp_path / 'gt.json', gt)
    dt_path = write(tmp_path / 'dt.json', dt)
    proc = run([os.path.join(TOOLS, 'evaluate.py'), '--gt', gt_path, '--dt', dt_path])
    assert proc.returncode == 1, proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    line = last_line(proc)
    assert line.startswith('evaluate.py: ')
    for text in expected:
        assert text in line, (text, line)


def test_coco_evaluate_in_memory_unknown_image_names_it():
    from lighthead.eval.coco_eval import coco_evaluate
    with pytest.raises(ValueError, match=r'detection 1 \(image_id 999\): image_id 999 is not'):
        coco_evaluate(gt_dict(), results(image_id=999))


# -- item 9: tools/convert.py -------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['coco2odgt', 'odgt2coco', 'odgt2coco_classes'])
def test_convert_refuses_a_nan_box_naming_file_and_record(tmp_path, kind):
    dst = tmp_path / 'out'
    if kind == 'coco2odgt':
        src = write(tmp_path / 'in.json', gt_dict(bbox=(float('nan'), 20, 30, 40)))
        args = ['coco2odgt', src, dst]
        record = "record 'a.jpg'"
    else:
        lines = [{'ID': 'a.jpg', 'fpath': '/a.jpg', 'height': 100, 'width': 200,
                  'gtboxes': [{'box': [1, 2, 3, 4], 'tag': 'cat'}]},
                 {'ID': 'b.jpg', 'fpath': '/b.jpg', 'height': 100, 'width': 200,
                  'gtboxes': [{'box': [float('nan'), 2, 3, 4], 'tag': 'cat'}]}]
        src = write(tmp_path / 'in.odgt', ''.join(json.dumps(l) + '\n' for l in lines))
        args = ['odgt2coco', src, dst] + (['--classes', 'cat'] if kind.endswith('classes')
                                          else [])
        record = "record 'b.jpg'"
    proc = run([os.path.join(TOOLS, 'convert.py')] + args)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert 'wrote' not in proc.stdout and 'Traceback' not in proc.stderr, proc.stderr
    line = last_line(proc)
    assert line.startswith('convert.py: ') and src in line and record in line, line
    assert 'non-finite' in line, line
    assert not os.path.exists(str(dst))  # nothing written


def test_convert_malformed_inputs_name_the_file(tmp_path):
    src = write(tmp_path / 'in.json', '{"images": [1, 2')
    proc = run([os.path.join(TOOLS, 'convert.py'), 'coco2odgt', src, tmp_path / 'o.odgt'])
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert src in last_line(proc) and 'malformed JSON' in last_line(proc)
    # an odgt line without gtboxes, no --classes: named by its ID
    src = write(tmp_path / 'in.odgt', json.dumps({'ID': 'x.jpg', 'fpath': '/x.jpg',
                                                  'height': 5, 'width': 5}) + '\n')
    proc = run([os.path.join(TOOLS, 'convert.py'), 'odgt2coco', src, tmp_path / 'o.json'])
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    line = last_line(proc)
    assert src in line and "'x.jpg'" in line and 'gtboxes' in line, line
    assert not os.path.exists(str(tmp_path / 'o.json'))


def test_convert_good_input_still_converts(tmp_path):
    from lighthead.datasets.convert import convert_file
    src = write(tmp_path / 'in.json', gt_dict())
    assert convert_file('coco2odgt', src, str(tmp_path / 'o.odgt')) == 2
    with open(str(tmp_path / 'o.odgt')) as f:
        assert [json.loads(l)['ID'] for l in f] == ['a.jpg', 'b.jpg']


# -- item 5: test.py -se 5 -ee 3 ----------------------------------------------------------------

def test_eval_cli_rejects_an_empty_epoch_range(tmp_path):
    from lighthead.eval import cli
    cfg = make_config(output_dir=str(tmp_path / 'out'))
    with pytest.raises(SystemExit) as info:
        cli.main(cfg, None, ['-se', '5', '-ee', '3'])
    message = str(info.value.code)
    assert message.startswith('lighthead: ')
    assert '-ee/--end_epoch 3' in message and '-se/--start_epoch 5' in message, message


# -- item 10: skipped bad records are counted on the console and in train.log -----------------

def bad_coco(tmp_path):
    """An instances JSON of the quickstart classes with 3 images, 2 of them bad."""
    coco = {'images': [{'id': i, 'file_name': '%s.png' % n, 'height': 50, 'width': 60}
                       for i, n in enumerate('abc', 1)],
            'annotations': [{'id': 1, 'image_id': 1, 'bbox': [1, 1, 10, 10], 'category_id': 1},
                            {'id': 2, 'image_id': 2, 'bbox': [55, 1, 30, 10], 'category_id': 1},
                            {'id': 3, 'image_id': 3, 'bbox': [1, 1, 10, 10], 'category_id': 99}],
            'categories': [{'id': i, 'name': n} for i, n in enumerate(CLASS_NAMES[1:], 1)]}
    for name in 'abc':
        open(str(tmp_path / ('%s.png' % name)), 'wb').close()
    return write(tmp_path / 'bad.json', coco)


def test_load_dataset_counts_skipped_records_on_console_and_in_train_log(tmp_path, capsys):
    from lighthead.train.trainer import _setup_logging
    source = bad_coco(tmp_path)
    cfg = make_config(train_source=source, train_root_folder=str(tmp_path),
                      class_names=list(CLASS_NAMES), skip_bad_records=True,
                      output_dir=str(tmp_path / 'out'))
    logger = _setup_logging(cfg)  # what Trainer.train does before load_dataset
    try:
        dataset = load_dataset(cfg, 'train')
    finally:
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)
    assert [r['id'] for r in dataset.records] == ['a.png']
    bad_path = os.path.join(cfg.log_dir, 'bad_records.txt')
    line = 'skipped 2 bad records of %s, listed in %s' % (source, bad_path)
    assert 'lighthead: ' + line in capsys.readouterr().err
    with open(os.path.join(cfg.log_dir, 'train.log')) as f:
        assert line in f.read()


def test_load_dataset_without_train_log_leaves_other_logs_alone(tmp_path, capsys):
    """An eval load prints the count but writes no train.log line of another run."""
    source = bad_coco(tmp_path)
    other = logging.getLogger('lighthead.train')
    assert not [h for h in other.handlers if getattr(h, 'baseFilename', None)]
    cfg = make_config(eval_source=source, eval_root_folder=str(tmp_path),
                      class_names=list(CLASS_NAMES), skip_bad_records=True,
                      output_dir=str(tmp_path / 'out'))
    assert len(load_dataset(cfg, 'eval').records) == 1
    assert 'lighthead: skipped 2 bad records of %s' % source in capsys.readouterr().err
    assert not os.path.exists(os.path.join(cfg.log_dir, 'train.log'))


def test_test_py_prints_the_skipped_count(tmp_path):
    """test.py loads the eval split first: the count is on the console even though the run
    then stops (no checkpoint here)."""
    source = bad_coco(tmp_path)
    out = tmp_path / 'out'
    proc = run([os.path.join(QUICKSTART, 'test.py'), '-se', '1', '--output', out,
                'eval_source=%s' % source, 'eval_root_folder=%s' % tmp_path,
                'skip_bad_records=True'], cwd=QUICKSTART)
    assert proc.returncode != 0
    bad_path = os.path.join(str(out), 'log', 'bad_records.txt')
    assert 'lighthead: skipped 2 bad records of %s, listed in %s' % (source, bad_path) \
        in proc.stderr, proc.stderr[-3000:]
    with open(bad_path) as f:
        assert len(f.read().splitlines()) == 2
