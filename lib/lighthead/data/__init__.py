"""Training data flow and image transforms."""
from .pipeline import TrainDataFlow
from .transforms import (ImageReadError, hflip_boxes, load_test_image, normalize, read_image,
                         resize_short_max)

__all__ = ['ImageReadError', 'TrainDataFlow', 'hflip_boxes', 'load_test_image', 'normalize',
           'read_image', 'resize_short_max']
