// TensorFlow-side launchers of the PSAlignPool CUDA kernels (psalign_pool_gpu.cu.h) on the op's
// stream. Compiled by nvcc with -DGOOGLE_CUDA=1 and linked with psalign_pool_op.cc, which declares
// these functions and registers the GPU kernels (LIGHTHEAD_WITH_CUDA).
#if GOOGLE_CUDA
#define EIGEN_USE_GPU

#include <vector>

#include "psalign_pool_gpu.cu.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace lighthead {
namespace psalign {
namespace {

// Copies the RoIs through a pageable buffer owned here: cudaMemcpyAsync stages pageable memory
// before it returns, so the copy cannot outlive its source even if TF recycles the host tensor.
cudaError_t CopyRoisToDevice(const PoolShape& s, const float* rois_host, float* rois_device,
                             cudaStream_t stream) {
  if (s.rois == 0) return cudaSuccess;
  const std::vector<float> staged(rois_host, rois_host + 5 * static_cast<size_t>(s.rois));
  return cudaMemcpyAsync(rois_device, staged.data(), sizeof(float) * staged.size(),
                         cudaMemcpyHostToDevice, stream);
}

const char* ErrorText(cudaError_t err) {
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

const char* ForwardGpu(const Eigen::GpuDevice& d, const PoolShape& s, const float* features,
                       const float* rois_host, float* rois_device, float* top, int* argmax) {
  cudaError_t err = CopyRoisToDevice(s, rois_host, rois_device, d.stream());
  if (err == cudaSuccess) {
    err = launch_psalign_forward(s, features, rois_device, top, argmax, d.stream());
  }
  return ErrorText(err);
}

const char* BackwardGpu(const Eigen::GpuDevice& d, const PoolShape& s, const float* rois_host,
                        float* rois_device, const int* argmax, const float* top_diff,
                        float* bottom_diff) {
  cudaError_t err = CopyRoisToDevice(s, rois_host, rois_device, d.stream());
  if (err == cudaSuccess) {
    err = launch_psalign_backward(s, rois_device, argmax, top_diff, bottom_diff, d.stream());
  }
  return ErrorText(err);
}

}  // namespace psalign
}  // namespace lighthead

#endif  // GOOGLE_CUDA
