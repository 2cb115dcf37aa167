// PSAlignPool CUDA kernels and their launchers, on raw device pointers and a stream. No TensorFlow:
// the TF op (psalign_pool_op_gpu.cu.cc) and the standalone harness (tools/cuda_check) both include
// this file, so they run the same code. Shapes and conventions: see psalign_pool.h.
#ifndef LIGHTHEAD_OPS_KERNELS_PSALIGN_POOL_GPU_CU_H_
#define LIGHTHEAD_OPS_KERNELS_PSALIGN_POOL_GPU_CU_H_

#include <cuda_runtime.h>

#include "psalign_pool.h"

namespace lighthead {
namespace psalign {

struct AtomicAdder {
  __device__ __forceinline__ void operator()(float* address, float value) const {
    atomicAdd(address, value);
  }
};

// Output index (n, ph, pw, k), k fastest, to its bin sampler and input channel.
__device__ __forceinline__ BinSampler output_sampler(const PoolShape& s, const float* rois,
                                                     int64_t index, int* n, int* channel) {
  const int out_channels = s.channels / (s.group_size * s.group_size);
  const int k = static_cast<int>(index % out_channels);
  const int pw = static_cast<int>((index / out_channels) % s.group_size);
  const int ph = static_cast<int>((index / out_channels / s.group_size) % s.group_size);
  *n = static_cast<int>(index / out_channels / s.group_size / s.group_size);
  *channel = (k * s.group_size + ph) * s.group_size + pw;
  BinSampler sampler;
  sampler.box = make_roi_box(rois + 5 * static_cast<int64_t>(*n), s.spatial_scale, s.group_size);
  sampler.ph = ph;
  sampler.pw = pw;
  sampler.sample_h = s.sample_h;
  sampler.sample_w = s.sample_w;
  sampler.height = s.height;
  sampler.width = s.width;
  return sampler;
}

// Batch indices are validated on the host before launch, so the truncation here is in range.
__device__ __forceinline__ int64_t image_offset(const PoolShape& s, const float* rois, int n) {
  const int b = static_cast<int>(rois[5 * static_cast<int64_t>(n)]);
  return static_cast<int64_t>(b) * s.height * s.width * s.channels;
}

__global__ void psalign_forward_kernel(PoolShape s, const float* __restrict__ features,
                                       const float* __restrict__ rois, float* __restrict__ top,
                                       int* __restrict__ argmax, int64_t total) {
  const int num_samples = s.sample_h * s.sample_w;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int n, channel;
    const BinSampler sampler = output_sampler(s, rois, index, &n, &channel);
    const float* image = features + image_offset(s, rois, n);
    int best;
    top[index] = pool_bin(image, s.channels, channel, num_samples, s.is_max, sampler, &best);
    argmax[index] = best;
  }
}

__global__ void psalign_backward_kernel(PoolShape s, const float* __restrict__ rois,
                                        const int* __restrict__ argmax,
                                        const float* __restrict__ top_diff,
                                        float* __restrict__ bottom_diff, int64_t total) {
  const int num_samples = s.sample_h * s.sample_w;
  const AtomicAdder add;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    int n, channel;
    const BinSampler sampler = output_sampler(s, rois, index, &n, &channel);
    float* image_diff = bottom_diff + image_offset(s, rois, n);
    scatter_bin(image_diff, s.channels, channel, num_samples, s.is_max, argmax[index],
                top_diff[index], sampler, add);
  }
}

inline int64_t output_count(const PoolShape& s) {
  return static_cast<int64_t>(s.rois) * s.channels;  // R*G*G*K
}

inline int grid_blocks(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 ? blocks : 65535);
}

// top, argmax: [R, G, G, K] device buffers. No launch when R == 0 (a 0-block grid is an error).
inline cudaError_t launch_psalign_forward(const PoolShape& s, const float* features,
                                          const float* rois, float* top, int* argmax,
                                          cudaStream_t stream) {
  const int64_t total = output_count(s);
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  psalign_forward_kernel<<<grid_blocks(total, threads), threads, 0, stream>>>(
      s, features, rois, top, argmax, total);
  return cudaGetLastError();
}

// Zeroes bottom_diff [B, H, W, C], then scatters top_diff [R, G, G, K] into it with atomics.
inline cudaError_t launch_psalign_backward(const PoolShape& s, const float* rois,
                                           const int* argmax, const float* top_diff,
                                           float* bottom_diff, cudaStream_t stream) {
  const size_t bottom_bytes = sizeof(float) * static_cast<size_t>(s.batch) * s.height * s.width *
                              static_cast<size_t>(s.channels);
  if (bottom_bytes > 0) {
    const cudaError_t err = cudaMemsetAsync(bottom_diff, 0, bottom_bytes, stream);
    if (err != cudaSuccess) return err;
  }
  const int64_t total = output_count(s);
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  psalign_backward_kernel<<<grid_blocks(total, threads), threads, 0, stream>>>(
      s, rois, argmax, top_diff, bottom_diff, total);
  return cudaGetLastError();
}

}  // namespace psalign
}  // namespace lighthead

#endif  // LIGHTHEAD_OPS_KERNELS_PSALIGN_POOL_GPU_CU_H_
