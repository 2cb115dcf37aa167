"""Hand-written annotation files that several test modules read (VOC trees, text files)."""
import os

VOC_IMAGES = {
    '000005': (50, 40, [('dog', [1, 1, 50, 40], False), ('cat', [10, 5, 20, 15], True)]),
    '2008_000123': (30, 30, [('cat', [2, 3, 4, 5], False)]),
}
VOC_XML = """<annotation><filename>{name}.jpg</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>"""
VOC_OBJ = """<object><name>{cls}</name><difficult>{diff}</difficult>
<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>
</object>"""


def write_voc(root, images, split='train'):
    """A VOC tree at ``root`` with the split ``split``.

    ``images``: {name: (w, h, [(cls, [xmin, ymin, xmax, ymax], difficult)])}."""
    for sub in ('Annotations', 'ImageSets/Main', 'JPEGImages'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    with open(os.path.join(root, 'ImageSets', 'Main', split + '.txt'), 'w') as f:
        f.write('\n'.join(images) + '\n')
    for name, (w, h, objs) in images.items():
        objects = ''.join(VOC_OBJ.format(cls=c, b=b, diff=int(d)) for c, b, d in objs)
        with open(os.path.join(root, 'Annotations', name + '.xml'), 'w') as f:
            f.write(VOC_XML.format(name=name, w=w, h=h, objects=objects))
    return root


def write_text(path, text):
    with open(str(path), 'w') as f:
        f.write(text)
    return str(path)
