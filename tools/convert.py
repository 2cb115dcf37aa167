"""Convert detection annotations between COCO JSON, .odgt and Pascal VOC (SPEC 5.7).

    python tools/convert.py coco2odgt IN.json OUT.odgt
    python tools/convert.py odgt2coco IN.odgt OUT.json [--classes a b c]
    python tools/convert.py voc2coco VOC_ROOT SPLIT OUT.json

What each direction carries is documented in ``lighthead.datasets.convert``. The source's
records are checked as the dataset loaders check them (e.g. no NaN or empty box, known
classes); a bad one exits non-zero with one line naming the file and the record, and nothing is
written.
"""
import argparse
import sys

from lighthead.datasets.convert import convert_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='kind')
    sub.required = True
    p = sub.add_parser('coco2odgt', help='COCO instances JSON -> .odgt')
    p.add_argument('src', metavar='IN.json')
    p.add_argument('dst', metavar='OUT.odgt')
    p = sub.add_parser('odgt2coco', help='.odgt -> COCO instances JSON')
    p.add_argument('src', metavar='IN.odgt')
    p.add_argument('dst', metavar='OUT.json')
    p.add_argument('--classes', nargs='+', help='class names in order (no background); '
                   'default: the tags found')
    p = sub.add_parser('voc2coco', help='Pascal VOC split -> COCO instances JSON')
    p.add_argument('src', metavar='VOC_ROOT')
    p.add_argument('split', metavar='SPLIT')
    p.add_argument('dst', metavar='OUT.json')
    args = parser.parse_args(argv)
    try:
        count = convert_file(args.kind, args.src, args.dst, split=getattr(args, 'split', None),
                             class_names=getattr(args, 'classes', None))
    except (IOError, OSError, ValueError) as e:  # BadRecordError is a ValueError
        sys.exit('convert.py: %s: %s' % (args.kind, e))
    print('%s: wrote %d images to %s' % (args.kind, count, args.dst))


if __name__ == '__main__':
    main()
