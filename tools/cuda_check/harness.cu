// Standalone host wrapper around the PSAlignPool CUDA kernels, for check.py (ctypes, no TF).
// It includes the very header the TF op compiles (lib/lighthead/ops/kernels/psalign_pool_gpu.cu.h)
// and calls the same launchers. Host arrays in, host arrays out; device buffers live per call.
#include <cuda_runtime.h>

#include "psalign_pool_gpu.cu.h"

namespace {

using lighthead::psalign::PoolShape;

struct DeviceBuffer {
  void* ptr = nullptr;
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
};

#define PSA_TRY(expr)                        \
  do {                                       \
    const cudaError_t err_ = (expr);         \
    if (err_ != cudaSuccess) return err_;    \
  } while (0)

PoolShape make_shape(int batch, int height, int width, int channels, int rois, int group_size,
                     int sample_h, int sample_w, float spatial_scale, int is_max) {
  PoolShape s;
  s.batch = batch;
  s.height = height;
  s.width = width;
  s.channels = channels;
  s.rois = rois;
  s.group_size = group_size;
  s.sample_h = sample_h;
  s.sample_w = sample_w;
  s.spatial_scale = spatial_scale;
  s.is_max = is_max != 0;
  return s;
}

cudaError_t upload(DeviceBuffer* buf, const void* host, size_t bytes) {
  PSA_TRY(cudaMalloc(&buf->ptr, bytes > 0 ? bytes : 1));
  if (bytes > 0) PSA_TRY(cudaMemcpy(buf->ptr, host, bytes, cudaMemcpyHostToDevice));
  return cudaSuccess;
}

// Runs `launch` once, then `iterations` more times between two events; *ms = mean per run.
template <typename Launch>
cudaError_t run_timed(const Launch& launch, int iterations, float* ms) {
  PSA_TRY(launch());
  PSA_TRY(cudaDeviceSynchronize());
  *ms = 0.f;
  if (iterations <= 0) return cudaSuccess;
  cudaEvent_t start, stop;
  PSA_TRY(cudaEventCreate(&start));
  PSA_TRY(cudaEventCreate(&stop));
  PSA_TRY(cudaEventRecord(start));
  for (int i = 0; i < iterations; ++i) PSA_TRY(launch());
  PSA_TRY(cudaEventRecord(stop));
  PSA_TRY(cudaEventSynchronize(stop));
  float total = 0.f;
  PSA_TRY(cudaEventElapsedTime(&total, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  *ms = total / iterations;
  return cudaSuccess;
}

}  // namespace

extern "C" {

// features [B, H, W, C], rois [R, 5] -> top, argmax [R, G, G, C/(G*G)]. Returns a cudaError_t.
int psa_forward(const float* features, int batch, int height, int width, int channels,
                const float* rois, int num_rois, int group_size, int sample_h, int sample_w,
                float spatial_scale, int is_max, float* top, int* argmax, int iterations,
                float* ms) {
  const PoolShape s = make_shape(batch, height, width, channels, num_rois, group_size, sample_h,
                                 sample_w, spatial_scale, is_max);
  const size_t feature_bytes = sizeof(float) * static_cast<size_t>(batch) * height * width *
                               static_cast<size_t>(channels);
  const size_t out_count = static_cast<size_t>(num_rois) * channels;
  DeviceBuffer d_features, d_rois, d_top, d_argmax;
  PSA_TRY(upload(&d_features, features, feature_bytes));
  PSA_TRY(upload(&d_rois, rois, sizeof(float) * 5 * static_cast<size_t>(num_rois)));
  PSA_TRY(cudaMalloc(&d_top.ptr, sizeof(float) * out_count + 1));
  PSA_TRY(cudaMalloc(&d_argmax.ptr, sizeof(int) * out_count + 1));
  PSA_TRY(run_timed(
      [&]() {
        return lighthead::psalign::launch_psalign_forward(
            s, static_cast<const float*>(d_features.ptr), static_cast<const float*>(d_rois.ptr),
            static_cast<float*>(d_top.ptr), static_cast<int*>(d_argmax.ptr), 0);
      },
      iterations, ms));
  PSA_TRY(cudaMemcpy(top, d_top.ptr, sizeof(float) * out_count, cudaMemcpyDeviceToHost));
  PSA_TRY(cudaMemcpy(argmax, d_argmax.ptr, sizeof(int) * out_count, cudaMemcpyDeviceToHost));
  return cudaSuccess;
}

// rois [R, 5], argmax and top_diff [R, G, G, C/(G*G)] -> bottom_diff [B, H, W, C] (zeroed first).
int psa_backward(const float* rois, int batch, int height, int width, int channels,
                 int num_rois, int group_size, int sample_h, int sample_w, float spatial_scale,
                 int is_max, const int* argmax, const float* top_diff, float* bottom_diff,
                 int iterations, float* ms) {
  const PoolShape s = make_shape(batch, height, width, channels, num_rois, group_size, sample_h,
                                 sample_w, spatial_scale, is_max);
  const size_t bottom_bytes = sizeof(float) * static_cast<size_t>(batch) * height * width *
                              static_cast<size_t>(channels);
  const size_t out_count = static_cast<size_t>(num_rois) * channels;
  DeviceBuffer d_rois, d_argmax, d_top_diff, d_bottom_diff;
  PSA_TRY(upload(&d_rois, rois, sizeof(float) * 5 * static_cast<size_t>(num_rois)));
  PSA_TRY(upload(&d_argmax, argmax, sizeof(int) * out_count));
  PSA_TRY(upload(&d_top_diff, top_diff, sizeof(float) * out_count));
  PSA_TRY(cudaMalloc(&d_bottom_diff.ptr, bottom_bytes + 1));
  PSA_TRY(run_timed(
      [&]() {
        return lighthead::psalign::launch_psalign_backward(
            s, static_cast<const float*>(d_rois.ptr), static_cast<const int*>(d_argmax.ptr),
            static_cast<const float*>(d_top_diff.ptr), static_cast<float*>(d_bottom_diff.ptr),
            0);
      },
      iterations, ms));
  PSA_TRY(cudaMemcpy(bottom_diff, d_bottom_diff.ptr, bottom_bytes, cudaMemcpyDeviceToHost));
  return cudaSuccess;
}

const char* psa_error_string(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

// Name of device 0 into buf (len bytes). Returns a cudaError_t.
int psa_device_name(char* buf, int len) {
  cudaDeviceProp prop;
  PSA_TRY(cudaGetDeviceProperties(&prop, 0));
  int i = 0;
  for (; i + 1 < len && prop.name[i]; ++i) buf[i] = prop.name[i];
  if (len > 0) buf[i] = '\0';
  return cudaSuccess;
}

}  // extern "C"
