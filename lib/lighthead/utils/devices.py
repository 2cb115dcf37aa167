"""Device lists for ``-d``: ``'0-7'``, ``'0,2,5'``, ``'0-1,4'``, and how to place towers on them."""
import os


def parse_devices(text):
    """``'0-1,4'`` -> ``[0, 1, 4]``. Raises ``ValueError`` naming the bad part."""
    devices = []
    for part in str(text).split(','):
        part = part.strip()
        try:
            if '-' in part:
                lo, hi = (int(x) for x in part.split('-'))
                if hi < lo:
                    raise ValueError
                devices.extend(range(lo, hi + 1))
            else:
                devices.append(int(part))
        except ValueError:
            raise ValueError('bad device list %r: %r is not N or N-M' % (text, part))
    if len(set(devices)) != len(devices) or any(d < 0 for d in devices):
        raise ValueError('bad device list %r: duplicate or negative device' % (text,))
    return devices


def setup_towers(devices):
    """Tower device names and the session ConfigProto for ``devices``.

    With GPUs visible to TensorFlow the towers go to ``/gpu:i`` (``CUDA_VISIBLE_DEVICES`` is
    set to ``devices``); otherwise one virtual CPU device is created per tower, so multi-tower
    code runs the same on a CPU-only machine.
    """
    from lighthead.compat import tf
    if tf.test.is_built_with_cuda() and os.environ.get('CUDA_VISIBLE_DEVICES', None) != '':
        os.environ['CUDA_VISIBLE_DEVICES'] = ','.join(str(d) for d in devices)
        config = tf.ConfigProto(allow_soft_placement=True)
        config.gpu_options.allow_growth = True
        names = ['/gpu:%d' % i for i in range(len(devices))]
    else:
        config = tf.ConfigProto(device_count={'CPU': len(devices)}, allow_soft_placement=True)
        names = ['/cpu:%d' % i for i in range(len(devices))]
    return names, config
