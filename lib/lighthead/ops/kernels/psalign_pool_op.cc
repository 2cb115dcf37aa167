// TensorFlow op LightheadPSAlignPool (+ its gradient op) and the multithreaded CPU kernels.
// Compiled with LIGHTHEAD_WITH_CUDA the same file also registers the GPU kernels, whose launchers
// live in psalign_pool_op_gpu.cu.cc; the GPU library is then a superset of the CPU library and
// exactly one of the two is loaded into a process.
//
// The name differs from the original's `PSAlignPool` so both libraries can share a process.
// Semantics: SPEC 3 and psalign_pool.h. Builds against TF 1.15 (C++14) and TF 2.x (C++17) headers.
#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "psalign_pool.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace tensorflow {
namespace {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;
// tensorflow::Status in TF 1.15, absl::Status in recent TF 2.x (where the old alias is deprecated).
using OpStatus = decltype(errors::Internal(""));
using lighthead::psalign::AxisTerms;
using lighthead::psalign::Corners;
using lighthead::psalign::PoolShape;

OpStatus PoolShapeFn(InferenceContext* c) {
  ShapeHandle features, rois;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &features));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &rois));
  DimensionHandle unused;
  TF_RETURN_IF_ERROR(c->WithValue(c->Dim(rois, 1), 5, &unused));
  int group_size;
  TF_RETURN_IF_ERROR(c->GetAttr("group_size", &group_size));
  DimensionHandle out_channels;
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(features, 3), group_size * group_size,
                               /*evenly_divisible=*/true, &out_channels));
  ShapeHandle out = c->MakeShape({c->Dim(rois, 0), group_size, group_size, out_channels});
  c->set_output(0, out);
  c->set_output(1, out);
  return OpStatus();
}

OpStatus GradShapeFn(InferenceContext* c) {
  ShapeHandle features;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &features));
  c->set_output(0, features);
  return OpStatus();
}

}  // namespace

REGISTER_OP("LightheadPSAlignPool")
    .Input("features: float")
    .Input("rois: float")
    .Output("pooled: float")
    .Output("argmax: int32")
    .Attr("group_size: int >= 1")
    .Attr("sample_height: int >= 1")
    .Attr("sample_width: int >= 1")
    .Attr("spatial_scale: float")
    .Attr("pool: {'max', 'avg'}")
    .SetShapeFn(PoolShapeFn)
    .Doc(R"doc(
Position-sensitive RoIAlign pooling (Light-Head R-CNN), bilinear samples, max or avg per bin.

features: [B, H, W, K*G*G] NHWC.
rois: [R, 5] rows (batch_index, x1, y1, x2, y2) in network-input pixels.
pooled: [R, G, G, K]; (n, ph, pw, k) reads channel (k*G + ph)*G + pw.
argmax: [R, G, G, K] winning sample index i*sample_width + j for max, -1 for avg.
)doc");

REGISTER_OP("LightheadPSAlignPoolGrad")
    .Input("features: float")
    .Input("rois: float")
    .Input("argmax: int32")
    .Input("grad: float")
    .Output("features_grad: float")
    .Attr("group_size: int >= 1")
    .Attr("sample_height: int >= 1")
    .Attr("sample_width: int >= 1")
    .Attr("spatial_scale: float")
    .Attr("pool: {'max', 'avg'}")
    .SetShapeFn(GradShapeFn)
    .Doc(R"doc(
Gradient of LightheadPSAlignPool with respect to `features` (same shape); none flows to rois.
)doc");

namespace {

struct PoolAttrs {
  int group_size;
  int sample_h;
  int sample_w;
  float spatial_scale;
  bool is_max;
};

void ReadAttrs(OpKernelConstruction* ctx, PoolAttrs* a) {
  OP_REQUIRES_OK(ctx, ctx->GetAttr("group_size", &a->group_size));
  OP_REQUIRES_OK(ctx, ctx->GetAttr("sample_height", &a->sample_h));
  OP_REQUIRES_OK(ctx, ctx->GetAttr("sample_width", &a->sample_w));
  OP_REQUIRES_OK(ctx, ctx->GetAttr("spatial_scale", &a->spatial_scale));
  std::string pool;
  OP_REQUIRES_OK(ctx, ctx->GetAttr("pool", &pool));
  a->is_max = pool == "max";
}

// Checks features/rois (rois must be in host memory) and fills the problem shape.
OpStatus CheckInputs(const Tensor& features, const Tensor& rois, const PoolAttrs& a,
                     PoolShape* s) {
  if (features.dims() != 4) {
    return errors::InvalidArgument("features must be [B, H, W, C], got shape ",
                                   features.shape().DebugString());
  }
  if (rois.dims() != 2 || rois.dim_size(1) != 5) {
    return errors::InvalidArgument("rois must be [R, 5], got shape ",
                                   rois.shape().DebugString());
  }
  const int64_t bins = static_cast<int64_t>(a.group_size) * a.group_size;
  if (features.dim_size(3) % bins != 0) {
    return errors::InvalidArgument("features has ", features.dim_size(3),
                                   " channels, not a multiple of group_size^2 = ", bins);
  }
  s->batch = static_cast<int>(features.dim_size(0));
  s->height = static_cast<int>(features.dim_size(1));
  s->width = static_cast<int>(features.dim_size(2));
  s->channels = static_cast<int>(features.dim_size(3));
  s->rois = static_cast<int>(rois.dim_size(0));
  s->group_size = a.group_size;
  s->sample_h = a.sample_h;
  s->sample_w = a.sample_w;
  s->spatial_scale = a.spatial_scale;
  s->is_max = a.is_max;
  const float* r = rois.flat<float>().data();
  for (int n = 0; n < s->rois; ++n) {
    const float b = r[5 * static_cast<int64_t>(n)];
    if (!(b >= 0.f && b < static_cast<float>(s->batch))) {
      return errors::InvalidArgument("rois[", n, ", 0] = ", b,
                                     " is not a batch index in [0, ", s->batch, ")");
    }
  }
  return OpStatus();
}

OpStatus CheckGradInputs(const Tensor& argmax, const Tensor& grad, const PoolShape& s) {
  const TensorShape expected(
      {s.rois, s.group_size, s.group_size, s.channels / (s.group_size * s.group_size)});
  if (argmax.shape() != expected || grad.shape() != expected) {
    return errors::InvalidArgument("argmax and grad must be ", expected.DebugString(), ", got ",
                                   argmax.shape().DebugString(), " and ",
                                   grad.shape().DebugString());
  }
  return OpStatus();
}

// Axis terms of the sample rows (p, i) -> rows[p*Sh + i] and columns (p, j) -> cols[p*Sw + j] of
// one RoI: G*(Sh + Sw) coordinates instead of G*G*Sh*Sw. Combined per bin they give the same
// corners as BinSampler (the CUDA kernel's per-sample path).
void ComputeAxes(const PoolShape& s, const float* roi, AxisTerms* rows, AxisTerms* cols) {
  const lighthead::psalign::RoiBox box =
      lighthead::psalign::make_roi_box(roi, s.spatial_scale, s.group_size);
  for (int p = 0; p < s.group_size; ++p) {
    for (int i = 0; i < s.sample_h; ++i) {
      rows[p * s.sample_h + i] = lighthead::psalign::axis_terms(
          lighthead::psalign::sample_coord(box.y_start, box.bin_h, p, i, s.sample_h), s.height);
    }
    for (int j = 0; j < s.sample_w; ++j) {
      cols[p * s.sample_w + j] = lighthead::psalign::axis_terms(
          lighthead::psalign::sample_coord(box.x_start, box.bin_w, p, j, s.sample_w), s.width);
    }
  }
}

// Corners of the samples of bin (ph, pw), table[i*Sw + j].
void FillBinTable(const PoolShape& s, const AxisTerms* rows, const AxisTerms* cols, int ph,
                  int pw, Corners* table) {
  for (int i = 0; i < s.sample_h; ++i) {
    for (int j = 0; j < s.sample_w; ++j) {
      table[i * s.sample_w + j] = lighthead::psalign::combine_corners(
          rows[ph * s.sample_h + i], cols[pw * s.sample_w + j], s.width);
    }
  }
}

int64_t ImageOffset(const PoolShape& s, const float* rois, int n) {
  const int b = static_cast<int>(rois[5 * static_cast<int64_t>(n)]);
  return static_cast<int64_t>(b) * s.height * s.width * s.channels;
}

// The corners of all samples of one bin, computed once and reused for the bin's K channels.
struct TableSampler {
  const Corners* table;
  Corners operator()(int s) const { return table[s]; }
};

struct PlainAdder {
  void operator()(float* address, float value) const { *address += value; }
};

void ShardWork(OpKernelContext* ctx, int64_t total, int64_t cost_per_unit,
               const std::function<void(int64_t, int64_t)>& work) {
  const auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(threads->num_threads, threads->workers, total, cost_per_unit, work);
}

// What the CPU and GPU kernels of each op share: attributes, input checks and output
// allocation. Subclasses only pool (Pool) or scatter the gradient (PoolGrad).
class PSAlignPoolOpBase : public OpKernel {
 public:
  explicit PSAlignPoolOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) { ReadAttrs(ctx, &a_); }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& features = ctx->input(0);
    const Tensor& rois = ctx->input(1);
    PoolShape s;
    OP_REQUIRES_OK(ctx, CheckInputs(features, rois, a_, &s));
    const int g = s.group_size;
    const TensorShape out_shape({s.rois, g, g, s.channels / (g * g)});
    Tensor* top = nullptr;
    Tensor* argmax = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &top));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, out_shape, &argmax));
    Pool(ctx, s, features, rois, top, argmax);
  }

 protected:
  // top and argmax: [R, G, G, C / (G*G)], allocated.
  virtual void Pool(OpKernelContext* ctx, const PoolShape& s, const Tensor& features,
                    const Tensor& rois, Tensor* top, Tensor* argmax) = 0;

 private:
  PoolAttrs a_;
};

class PSAlignPoolGradOpBase : public OpKernel {
 public:
  explicit PSAlignPoolGradOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    ReadAttrs(ctx, &a_);
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& features = ctx->input(0);
    const Tensor& rois = ctx->input(1);
    const Tensor& argmax = ctx->input(2);
    const Tensor& grad = ctx->input(3);
    PoolShape s;
    OP_REQUIRES_OK(ctx, CheckInputs(features, rois, a_, &s));
    OP_REQUIRES_OK(ctx, CheckGradInputs(argmax, grad, s));
    Tensor* diff = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, features.shape(), &diff));
    PoolGrad(ctx, s, rois, argmax, grad, diff);
  }

 protected:
  // diff: the features' shape, allocated, not zeroed.
  virtual void PoolGrad(OpKernelContext* ctx, const PoolShape& s, const Tensor& rois,
                        const Tensor& argmax, const Tensor& grad, Tensor* diff) = 0;

 private:
  PoolAttrs a_;
};

class PSAlignPoolCpuOp : public PSAlignPoolOpBase {
 public:
  using PSAlignPoolOpBase::PSAlignPoolOpBase;

 protected:
  void Pool(OpKernelContext* ctx, const PoolShape& s, const Tensor& features, const Tensor& rois,
            Tensor* top, Tensor* argmax) override {
    const int g = s.group_size;
    const int k_out = s.channels / (g * g);
    const float* f = features.flat<float>().data();
    const float* r = rois.flat<float>().data();
    float* t = top->flat<float>().data();
    int* am = argmax->flat<int>().data();
    const int num_samples = s.sample_h * s.sample_w;
    // One unit is one RoI: its axis terms, then per bin the sample corners and K channels.
    const int64_t cost = static_cast<int64_t>(g) * g * num_samples * (20 + 16 * k_out);
    ShardWork(ctx, s.rois, cost, [&](int64_t begin, int64_t end) {
      std::vector<AxisTerms> rows(g * s.sample_h), cols(g * s.sample_w);
      std::vector<Corners> table(num_samples);
      const TableSampler sampler{table.data()};
      for (int64_t n = begin; n < end; ++n) {
        ComputeAxes(s, r + 5 * n, rows.data(), cols.data());
        const float* image = f + ImageOffset(s, r, static_cast<int>(n));
        for (int ph = 0; ph < g; ++ph) {
          for (int pw = 0; pw < g; ++pw) {
            FillBinTable(s, rows.data(), cols.data(), ph, pw, table.data());
            const int64_t o = ((n * g + ph) * g + pw) * k_out;
            for (int k = 0; k < k_out; ++k) {
              t[o + k] = lighthead::psalign::pool_bin(image, s.channels, (k * g + ph) * g + pw,
                                                      num_samples, s.is_max, sampler, am + o + k);
            }
          }
        }
      }
    });
  }
};

// Deterministic backward: a work unit is one bin (ph, pw), which owns the input channels
// (k*G + ph)*G + pw for all k, so shards write disjoint channels, each in a fixed order (RoIs
// ascending, then samples, then corners) whatever the sharding.
class PSAlignPoolGradCpuOp : public PSAlignPoolGradOpBase {
 public:
  using PSAlignPoolGradOpBase::PSAlignPoolGradOpBase;

 protected:
  void PoolGrad(OpKernelContext* ctx, const PoolShape& s, const Tensor& rois,
                const Tensor& argmax, const Tensor& grad, Tensor* diff) override {
    float* d = diff->flat<float>().data();
    std::memset(d, 0, sizeof(float) * diff->NumElements());
    const float* r = rois.flat<float>().data();
    const int* am = argmax.flat<int>().data();
    const float* gr = grad.flat<float>().data();
    const int g = s.group_size;
    const int k_out = s.channels / (g * g);
    const int num_samples = s.sample_h * s.sample_w;
    const int rows_per_roi = g * s.sample_h;
    const int cols_per_roi = g * s.sample_w;
    std::vector<AxisTerms> rows(static_cast<size_t>(s.rois) * rows_per_roi);
    std::vector<AxisTerms> cols(static_cast<size_t>(s.rois) * cols_per_roi);
    ShardWork(ctx, s.rois, 40 * (rows_per_roi + cols_per_roi), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) {
        ComputeAxes(s, r + 5 * n, rows.data() + n * rows_per_roi, cols.data() + n * cols_per_roi);
      }
    });
    const int64_t cost = static_cast<int64_t>(s.rois) * num_samples * (20 + 16 * k_out);
    const PlainAdder add;
    ShardWork(ctx, static_cast<int64_t>(g) * g, cost, [&](int64_t begin, int64_t end) {
      std::vector<Corners> table(num_samples);
      const TableSampler sampler{table.data()};
      for (int64_t bin = begin; bin < end; ++bin) {
        const int ph = static_cast<int>(bin / g);
        const int pw = static_cast<int>(bin % g);
        for (int n = 0; n < s.rois; ++n) {
          FillBinTable(s, rows.data() + static_cast<int64_t>(n) * rows_per_roi,
                       cols.data() + static_cast<int64_t>(n) * cols_per_roi, ph, pw,
                       table.data());
          float* image_diff = d + ImageOffset(s, r, n);
          const int64_t o = (static_cast<int64_t>(n) * g * g + bin) * k_out;
          for (int k = 0; k < k_out; ++k) {
            lighthead::psalign::scatter_bin(image_diff, s.channels, (k * g + ph) * g + pw,
                                            num_samples, s.is_max, am[o + k], gr[o + k],
                                            sampler, add);
          }
        }
      }
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("LightheadPSAlignPool").Device(DEVICE_CPU), PSAlignPoolCpuOp);
REGISTER_KERNEL_BUILDER(Name("LightheadPSAlignPoolGrad").Device(DEVICE_CPU),
                        PSAlignPoolGradCpuOp);

#if defined(LIGHTHEAD_WITH_CUDA)

}  // namespace
}  // namespace tensorflow

namespace lighthead {
namespace psalign {
// Defined in psalign_pool_op_gpu.cu.cc; each returns nullptr on success, else the CUDA error text.
// rois_host is copied to rois_device on the device's stream first.
const char* ForwardGpu(const Eigen::GpuDevice& d, const PoolShape& s, const float* features,
                       const float* rois_host, float* rois_device, float* top, int* argmax);
const char* BackwardGpu(const Eigen::GpuDevice& d, const PoolShape& s, const float* rois_host,
                        float* rois_device, const int* argmax, const float* top_diff,
                        float* bottom_diff);
}  // namespace psalign
}  // namespace lighthead

namespace tensorflow {
namespace {

// rois live in host memory (validated there) and are copied to the device per call.
class PSAlignPoolGpuOp : public PSAlignPoolOpBase {
 public:
  using PSAlignPoolOpBase::PSAlignPoolOpBase;

 protected:
  void Pool(OpKernelContext* ctx, const PoolShape& s, const Tensor& features, const Tensor& rois,
            Tensor* top, Tensor* argmax) override {
    Tensor rois_device;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_FLOAT, rois.shape(), &rois_device));
    const char* err = lighthead::psalign::ForwardGpu(
        ctx->eigen_gpu_device(), s, features.flat<float>().data(), rois.flat<float>().data(),
        rois_device.flat<float>().data(), top->flat<float>().data(),
        argmax->flat<int>().data());
    OP_REQUIRES(ctx, err == nullptr, errors::Internal("LightheadPSAlignPool CUDA: ", err));
  }
};

class PSAlignPoolGradGpuOp : public PSAlignPoolGradOpBase {
 public:
  using PSAlignPoolGradOpBase::PSAlignPoolGradOpBase;

 protected:
  void PoolGrad(OpKernelContext* ctx, const PoolShape& s, const Tensor& rois,
                const Tensor& argmax, const Tensor& grad, Tensor* diff) override {
    Tensor rois_device;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_FLOAT, rois.shape(), &rois_device));
    const char* err = lighthead::psalign::BackwardGpu(
        ctx->eigen_gpu_device(), s, rois.flat<float>().data(), rois_device.flat<float>().data(),
        argmax.flat<int>().data(), grad.flat<float>().data(), diff->flat<float>().data());
    OP_REQUIRES(ctx, err == nullptr, errors::Internal("LightheadPSAlignPoolGrad CUDA: ", err));
  }
};

REGISTER_KERNEL_BUILDER(Name("LightheadPSAlignPool").Device(DEVICE_GPU).HostMemory("rois"),
                        PSAlignPoolGpuOp);
REGISTER_KERNEL_BUILDER(Name("LightheadPSAlignPoolGrad").Device(DEVICE_GPU).HostMemory("rois"),
                        PSAlignPoolGradGpuOp);

#endif  // LIGHTHEAD_WITH_CUDA

}  // namespace
}  // namespace tensorflow
