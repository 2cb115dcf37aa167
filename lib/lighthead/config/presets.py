"""Groups of config entries that experiments share: ``make_config(**preset(), ...)``."""
import os


def coco_dataset(class_names, root, train_json, train_images, val_json, val_images):
    """Dataset entries for COCO-format train and val splits; paths relative to ``root``."""
    return dict(class_names=class_names, dataset_format='coco',
                train_source=os.path.join(root, train_json),
                train_root_folder=os.path.join(root, train_images),
                eval_source=os.path.join(root, val_json),
                eval_root_folder=os.path.join(root, val_images))


def coco_splits(root, class_names):
    """Dataset entries for COCO-format data laid out as the project's generators write it:
    ``<root>/annotations/{train,val}.json`` with images in ``<root>/train/`` and ``<root>/val/``."""
    return coco_dataset(class_names, root, os.path.join('annotations', 'train.json'), 'train',
                        os.path.join('annotations', 'val.json'), 'val')


def from_scratch(bn_decay=0.95):
    """Training without pretrained weights: nothing frozen, BN trained with batch statistics,
    and BN moving averages with a short memory (``bn_decay``): from scratch the statistics move
    fast, and with the original's 0.997 the evaluation would use averages that still weigh the
    statistics of hundreds of steps ago."""
    return dict(weight=None, freeze_at=0, bn_training=True, bn_decay=bn_decay)
