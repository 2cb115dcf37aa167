// PSAlignPool geometry, bilinear sampling and per-bin pooling, shared by the CPU kernel, the CUDA
// kernel and the standalone CUDA harness. No TensorFlow here; compiled as __host__ __device__ by nvcc.
//
// Conventions (SPEC 3): features NHWC [B, H, W, C], C = K*G*G; rois [R, 5] rows
// (batch, x1, y1, x2, y2) in network-input pixels; output [R, G, G, K] where (n, ph, pw, k) reads
// input channel c = (k*G + ph)*G + pw. Pixel k sits at coordinate k (no half-pixel offset).
#ifndef LIGHTHEAD_OPS_KERNELS_PSALIGN_POOL_H_
#define LIGHTHEAD_OPS_KERNELS_PSALIGN_POOL_H_

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define PSA_HD __host__ __device__ __forceinline__
#else
#define PSA_HD inline
#endif

namespace lighthead {
namespace psalign {

// a + b * c rounded after each operation, so host and device (where nvcc would fuse into an FMA)
// compute bit-identical sample coordinates and interpolated values.
PSA_HD float add_mul(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, __fmul_rn(b, c));
#else
  return a + b * c;
#endif
}

// Problem sizes of one call (both directions).
struct PoolShape {
  int batch, height, width, channels;  // features [B, H, W, C], C = K*G*G
  int rois;                            // R
  int group_size;                      // G
  int sample_h, sample_w;
  float spatial_scale;
  bool is_max;
};

// floor(v) for |v| < 2^31, without the libm call floorf costs on the default x86-64 target.
PSA_HD int floor_int(float v) {
  const int t = static_cast<int>(v);  // truncates toward zero
  return static_cast<float>(t) > v ? t - 1 : t;
}

// One RoI scaled to the feature map: start corner and bin size, no rounding, no +1.
struct RoiBox {
  float y_start;
  float x_start;
  float bin_h;
  float bin_w;
};

PSA_HD RoiBox make_roi_box(const float* roi, float spatial_scale, int group_size) {
  RoiBox box;
  box.x_start = spatial_scale * roi[1];
  box.y_start = spatial_scale * roi[2];
  const float x_end = spatial_scale * roi[3];
  const float y_end = spatial_scale * roi[4];
  box.bin_w = fmaxf(x_end - box.x_start, 0.f) / static_cast<float>(group_size);
  box.bin_h = fmaxf(y_end - box.y_start, 0.f) / static_cast<float>(group_size);
  return box;
}

// Coordinate of sample `i` (of `samples`) inside bin `p`: start + bin * (p + (i + 0.5) / samples).
PSA_HD float sample_coord(float start, float bin, int p, int i, int samples) {
  const float offset =
      static_cast<float>(p) + (static_cast<float>(i) + 0.5f) / static_cast<float>(samples);
  return add_mul(start, bin, offset);
}

// The two bilinear neighbours of a sample coordinate along one axis: floor (weight 1 - frac)
// and floor + 1 (weight frac), each used only inside [0, size - 1] (no clamping). The +1
// neighbour of an exact-integer coordinate has weight 0 and is not used, so that pixel is read
// once. A coordinate <= -1 or >= size (or NaN) uses neither.
struct AxisTerms {
  int low;
  float w_low, w_high;
  bool use_low, use_high;
};

PSA_HD AxisTerms axis_terms(float coord, int size) {
  AxisTerms t;
  t.low = 0;
  t.w_low = t.w_high = 0.f;
  t.use_low = t.use_high = false;
  if (!(coord > -1.f && coord < static_cast<float>(size))) return t;  // keeps floor_int in range
  t.low = floor_int(coord);
  const float frac = coord - static_cast<float>(t.low);
  t.w_low = 1.f - frac;
  t.w_high = frac;
  t.use_low = t.low >= 0;
  t.use_high = frac > 0.f && t.low + 1 < size;
  return t;
}

// The four bilinear corners of one sample in the fixed order (y0,x0), (y0+1,x0), (y0,x0+1),
// (y0+1,x0+1). `index` is h*W + w, or -1 for a corner that is not used; weight = wy * wx.
struct Corners {
  int index[4];
  float weight[4];
};

PSA_HD Corners combine_corners(const AxisTerms& ty, const AxisTerms& tx, int width) {
  Corners c;
  const bool use_y[2] = {ty.use_low, ty.use_high};
  const bool use_x[2] = {tx.use_low, tx.use_high};
  const float wy[2] = {ty.w_low, ty.w_high};
  const float wx[2] = {tx.w_low, tx.w_high};
  for (int q = 0; q < 4; ++q) {
    const int dy = q & 1;
    const int dx = q >> 1;
    const bool used = use_y[dy] && use_x[dx];
    c.index[q] = used ? (ty.low + dy) * width + tx.low + dx : -1;
    c.weight[q] = used ? wy[dy] * wx[dx] : 0.f;
  }
  return c;
}

PSA_HD Corners bilinear_corners(float y, float x, int height, int width) {
  return combine_corners(axis_terms(y, height), axis_terms(x, width), width);
}

// Interpolated value of channel `channel`; `image` is the [H, W, C] map of one batch element.
PSA_HD float interpolate(const float* image, int channels, int channel, const Corners& c) {
  float value = 0.f;
  for (int q = 0; q < 4; ++q) {
    if (c.index[q] >= 0) {
      value = add_mul(value, image[static_cast<int64_t>(c.index[q]) * channels + channel],
                      c.weight[q]);
    }
  }
  return value;
}

// Corners of sample s = i*Sw + j of bin (ph, pw), computed on demand (the CUDA kernels). The CPU
// kernels build the same corners from per-RoI AxisTerms tables.
struct BinSampler {
  RoiBox box;
  int ph, pw, sample_h, sample_w, height, width;

  PSA_HD Corners operator()(int s) const {
    const int i = s / sample_w;
    const int j = s - i * sample_w;
    const float y = sample_coord(box.y_start, box.bin_h, ph, i, sample_h);
    const float x = sample_coord(box.x_start, box.bin_w, pw, j, sample_w);
    return bilinear_corners(y, x, height, width);
  }
};

// Pools one output element over its `num_samples` samples. Max: strict '>' in row-major sample
// order, so the first of equal samples wins; *argmax gets its index. Avg: the mean; *argmax = -1.
template <typename Sampler>
PSA_HD float pool_bin(const float* image, int channels, int channel, int num_samples,
                      bool is_max, const Sampler& sampler, int* argmax) {
  if (is_max) {
    float best = -INFINITY;
    int best_s = 0;
    for (int s = 0; s < num_samples; ++s) {
      const float v = interpolate(image, channels, channel, sampler(s));
      const bool better = v > best;  // selects rather than branches: winners are unpredictable
      best = better ? v : best;
      best_s = better ? s : best_s;
    }
    *argmax = best_s;
    return best;
  }
  float sum = 0.f;
  for (int s = 0; s < num_samples; ++s) {
    sum += interpolate(image, channels, channel, sampler(s));
  }
  *argmax = -1;
  return sum / static_cast<float>(num_samples);
}

// Scatters the gradient `grad` of one output element to the corners it read: only the winning
// sample's for max, all samples' with grad / num_samples for avg. `add(ptr, v)` does *ptr += v
// (atomically on the GPU). `image_diff` is the [H, W, C] gradient of one batch element.
template <typename Sampler, typename Adder>
PSA_HD void scatter_bin(float* image_diff, int channels, int channel, int num_samples,
                        bool is_max, int argmax, float grad, const Sampler& sampler,
                        const Adder& add) {
  const int first = is_max ? argmax : 0;
  const int last = is_max ? argmax + 1 : num_samples;
  const float g = is_max ? grad : grad / static_cast<float>(num_samples);
  for (int s = first; s < last; ++s) {
    const Corners c = sampler(s);
    for (int q = 0; q < 4; ++q) {
      if (c.index[q] >= 0) {
        add(image_diff + static_cast<int64_t>(c.index[q]) * channels + channel, g * c.weight[q]);
      }
    }
  }
}

}  // namespace psalign
}  // namespace lighthead

#endif  // LIGHTHEAD_OPS_KERNELS_PSALIGN_POOL_H_
