"""Backbones and their registry.

Every backbone module exposes its builder under its own name (``xception_star``,
``xception_geonseoks``, ``resnet_v1_101``) and as ``build``, with the signature

    build(images, is_training=False, bn_training=False, freeze_at=2, weight_decay=1e-4,
          bn_decay=0.997, num_classes=None, scope=SCOPE, reuse=None) -> (net, end_points)

and the constants ``SCOPE`` (default variable scope), ``RPN_FEATURE`` / ``HEAD_FEATURE``
(end-point aliases the detector uses) and ``FEATURE_STRIDES`` (alias -> output stride)::

    backbone = get_backbone('xception_star')
    net, end_points = backbone.build(images)
    rpn_in = end_points[backbone.RPN_FEATURE]      # stride backbone.FEATURE_STRIDES[...]
"""
from . import resnet_v1, xception_geonseoks, xception_star

BACKBONES = {
    'xception_star': xception_star,
    'xception_geonseoks': xception_geonseoks,
    'resnet_v1_101': resnet_v1,
}


def get_backbone(name):
    """Module of the backbone ``name``: 'xception_star', 'xception_geonseoks' or
    'resnet_v1_101' (ValueError otherwise)."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError('unknown backbone %r; choose one of %s'
                         % (name, ', '.join(sorted(BACKBONES))))
