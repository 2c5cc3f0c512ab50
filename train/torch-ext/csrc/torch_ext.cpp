#include "torch_ext.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_sub.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>
#include <ATen/ops/max_pool3d.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/cpu/Utils.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/Event.h>
#include <c10/core/MemoryFormat.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <c10/util/Exception.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

char* dup_message(const char* msg) { return strdup(msg); }

// c10::Error::what() appends a C++ backtrace on some builds; the short form is
// what a Rust caller can show to a user.
template <typename F>
char* protect(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception in torch-ext");
  }
}

c10::DeviceType autocast_device(int device_type) {
  auto dt = static_cast<c10::DeviceType>(device_type);
  // The set/get functions index per-device tables without checking; a device
  // type autocast does not know must fail here, not read out of bounds.
  TORCH_CHECK(at::autocast::is_autocast_available(dt),
              "autocast is not available for device type ", dt);
  return dt;
}

// Looked up by name, not linked by symbol: the op lives in libtorch_cpu's
// registry only, with no public C++ declaration.
std::optional<c10::OperatorHandle> conv_pointwise_op() {
  return c10::Dispatcher::singleton().findSchema({"mkldnn::_convolution_pointwise", ""});
}

std::vector<int64_t> int_list(const int64_t* values, int64_t n) {
  return std::vector<int64_t>(values, values + n);
}

std::vector<at::Tensor> tensor_list(const tex_tensor* tensors, int64_t n) {
  std::vector<at::Tensor> list;
  list.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) list.push_back(*tensors[i]);
  return list;
}

std::optional<at::Tensor> optional_tensor(const tex_tensor t) {
  return t == nullptr ? std::nullopt : std::optional<at::Tensor>(*t);
}

c10::MemoryFormat memory_format(int mf) {
  TORCH_CHECK(mf >= 0 && mf <= static_cast<int>(c10::MemoryFormat::ChannelsLast3d),
              "unknown memory format ", mf);
  return static_cast<c10::MemoryFormat>(mf);
}

}  // namespace

extern "C" {

void tex_free_error(char* err) { free(err); }

char* tex_autocast_set_enabled(int device_type, bool enabled) {
  return protect([&] { at::autocast::set_autocast_enabled(autocast_device(device_type), enabled); });
}

char* tex_autocast_is_enabled(int device_type, bool* out) {
  return protect([&] { *out = at::autocast::is_autocast_enabled(autocast_device(device_type)); });
}

char* tex_autocast_set_dtype(int device_type, int scalar_type) {
  return protect([&] {
    at::autocast::set_autocast_dtype(autocast_device(device_type),
                                     static_cast<at::ScalarType>(scalar_type));
  });
}

char* tex_autocast_get_dtype(int device_type, int* out) {
  return protect([&] {
    *out = static_cast<int>(at::autocast::get_autocast_dtype(autocast_device(device_type)));
  });
}

char* tex_autocast_clear_cache(void) {
  return protect([&] { at::autocast::clear_cache(); });
}

char* tex_autocast_increment_nesting(int* out) {
  return protect([&] { *out = at::autocast::increment_nesting(); });
}

char* tex_autocast_decrement_nesting(int* out) {
  return protect([&] { *out = at::autocast::decrement_nesting(); });
}

char* tex_autocast_set_cache_enabled(bool enabled) {
  return protect([&] { at::autocast::set_autocast_cache_enabled(enabled); });
}

char* tex_autocast_is_cache_enabled(bool* out) {
  return protect([&] { *out = at::autocast::is_autocast_cache_enabled(); });
}

char* tex_contiguous(const tex_tensor t, int mf, tex_tensor* out) {
  return protect([&] { *out = new at::Tensor(t->contiguous(memory_format(mf))); });
}

char* tex_restride(const tex_tensor t, int mf, tex_tensor* out) {
  return protect([&] {
    // contiguous(ChannelsLast3d) returns a [8,1,3,3,3] weight unchanged (a
    // size-1 dim satisfies either layout), and the convolution then reads
    // the weight's strides as contiguous and runs the whole layer, the
    // model's largest, in the slow layout. Python's `Module.to(memory_format)`
    // restrides such tensors; so does this.
    auto target = at::empty_like(*t, t->options(), memory_format(mf));
    if (target.strides() == t->strides()) {
      *out = new at::Tensor(*t);
    } else {
      target.copy_(*t);
      *out = new at::Tensor(std::move(target));
    }
  });
}

char* tex_is_contiguous(const tex_tensor t, int mf, bool* out) {
  return protect([&] { *out = t->is_contiguous(memory_format(mf)); });
}

char* tex_suggest_memory_format(const tex_tensor t, int* out) {
  return protect([&] { *out = static_cast<int>(t->suggest_memory_format()); });
}

namespace {
struct DeviceEvent {
  c10::Device device;
  c10::Event event;
  // Made on first use: a stream of the device's pool, for host->device copies.
  std::optional<c10::Stream> side;
};
}  // namespace

char* tex_event_new_cuda(int64_t device_index, tex_event* out) {
  return protect([&] {
    auto device = c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device_index));
    // Throws (caught) where no CUDA backend is registered, i.e. without a GPU build.
    c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
    TORCH_CHECK(device_index >= 0 && device_index < guard.deviceCount(),
                "no CUDA device ", device_index);
    *out = new DeviceEvent{device, c10::Event(c10::DeviceType::CUDA), std::nullopt};
  });
}

char* tex_event_record(tex_event e) {
  return protect([&] {
    auto* de = static_cast<DeviceEvent*>(e);
    c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
    de->event.record(guard.getStream(de->device));
  });
}

char* tex_event_synchronize(tex_event e) {
  return protect([&] { static_cast<DeviceEvent*>(e)->event.synchronize(); });
}

void tex_event_free(tex_event e) { delete static_cast<DeviceEvent*>(e); }

char* tex_event_copy_to_device(tex_event e, const tex_tensor src, tex_tensor* out) {
  return protect([&] {
    auto* de = static_cast<DeviceEvent*>(e);
    c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
    if (!de->side) de->side = guard.getStreamFromGlobalPool(de->device, false);
    c10::Stream compute = guard.getStream(de->device);
    at::Tensor copy;
    {
      // Allocated and filled on the side stream (the guard restores the
      // current device and stream, also when the copy throws).
      c10::StreamGuard on_side(*de->side);
      copy = src->to(de->device, /*non_blocking=*/true);
    }
    de->event.record(*de->side);
    de->event.block(compute);
    copy.record_stream(compute);
    *out = new at::Tensor(std::move(copy));
  });
}

char* tex_pin_memory(const tex_tensor t, tex_tensor* out) {
  return protect([&] { *out = new at::Tensor(t->pin_memory()); });
}

char* tex_storage_use_count(const tex_tensor t, int64_t* out) {
  return protect([&] {
    // Views hold the storage through TensorImpls of their own; a shallow
    // clone (another handle to t's TensorImpl) holds it through t's.
    *out = static_cast<int64_t>(t->storage().use_count() + t->use_count() - 1);
  });
}

char* tex_cuda_set_device(int64_t device_index) {
  return protect([&] {
    c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
    TORCH_CHECK(device_index >= 0 && device_index < guard.deviceCount(),
                "no CUDA device ", device_index);
    guard.setDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device_index)));
  });
}

char* tex_cuda_current_device(int64_t* out) {
  return protect([&] {
    c10::impl::VirtualGuardImpl guard(c10::DeviceType::CUDA);
    *out = guard.getDevice().index();
  });
}

char* tex_amp_non_finite_check_and_unscale(const tex_tensor* grads, int64_t n,
                                           tex_tensor found_inf, const tex_tensor inv_scale) {
  return protect([&] {
    auto list = tensor_list(grads, n);
    at::_amp_foreach_non_finite_check_and_unscale_(list, *found_inf, *inv_scale);
  });
}

char* tex_fused_adam(const tex_tensor* params, const tex_tensor* grads, const tex_tensor* exp_avgs,
                     const tex_tensor* exp_avg_sqs, const tex_tensor* state_steps, int64_t n,
                     double lr, double beta1, double beta2, double weight_decay, double eps,
                     bool decoupled_weight_decay, const tex_tensor found_inf) {
  return protect([&] {
    auto ps = tensor_list(params, n), gs = tensor_list(grads, n);
    auto ms = tensor_list(exp_avgs, n), vs = tensor_list(exp_avg_sqs, n);
    auto steps = tensor_list(state_steps, n);
    auto skip = optional_tensor(found_inf);
    // As torch.optim.Adam(fused=True): the kernel reads the new count.
    at::_foreach_add_(steps, 1);
    if (decoupled_weight_decay) {
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weight_decay, eps,
                        /*amsgrad=*/false, /*maximize=*/false, std::nullopt, skip);
    } else {
      at::_fused_adam_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weight_decay, eps,
                       /*amsgrad=*/false, /*maximize=*/false, std::nullopt, skip);
    }
    if (skip) at::_foreach_sub_(steps, std::vector<at::Tensor>(steps.size(), *skip));
  });
}

char* tex_fused_sgd(const tex_tensor* params, const tex_tensor* grads, const tex_tensor* bufs,
                    int64_t n, double lr, double momentum, double weight_decay, bool nesterov,
                    bool is_first_step, const tex_tensor found_inf) {
  return protect([&] {
    at::_fused_sgd_(tensor_list(params, n), tensor_list(grads, n), tensor_list(bufs, n),
                    weight_decay, momentum, lr, /*dampening=*/0.0, nesterov,
                    /*maximize=*/false, is_first_step, std::nullopt, optional_tensor(found_inf));
  });
}

char* tex_cpu_feature(const char* name, int* out) {
  return protect([&] {
    // cpuinfo's symbols are not exported from libtorch_cpu; this map is the
    // only public window onto them.
    auto caps = at::cpu::get_cpu_capabilities();
    auto it = caps.find(name);
    if (it == caps.end() || !it->second.isBool()) {
      *out = -1;
    } else {
      *out = it->second.toBool() ? 1 : 0;
    }
  });
}

char* tex_cuda_supports_bf16(int64_t device_index, bool* out) {
  return protect([&] {
    *out = false;
    // Without libtorch_cuda loaded these are the stub hooks: hasCUDA() is
    // false and nothing below runs, so CPU-only builds need no CUDA headers.
    const auto& hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDA()) return;
    if (device_index < 0 || device_index >= hooks.getNumGPUs()) return;
    // The hooks only answer "compute capability >= 8" for the current device,
    // so switch to the asked one and always switch back.
    auto wanted = static_cast<c10::DeviceIndex>(device_index);
    auto previous = hooks.exchangeDevice(wanted);
    // maybeExchangeDevice: switching back to a device with no context yet
    // (device 0 under `--device cuda:1`) must not create one there.
    struct Restore {
      const at::CUDAHooksInterface& h;
      c10::DeviceIndex d;
      ~Restore() {
        try {
          h.maybeExchangeDevice(d);
        } catch (...) {
        }
      }
    } restore{hooks, previous};
    *out = hooks.supportsBFloat16ConvolutionWithCuDNNv8();
  });
}

}  // extern "C"

extern "C" {

char* tex_parallel_for(int64_t begin, int64_t end, int64_t grain, tex_range_fn body, void* ctx) {
  return protect([&] {
    at::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) { body(ctx, b, e); });
  });
}

char* tex_conv_pointwise_available(bool* out) {
  return protect([&] { *out = conv_pointwise_op().has_value(); });
}

}  // extern "C"

namespace {
template <typename T>
void leaky_frame_shift(at::Tensor& y, const at::Tensor& corr, float slope) {
  const int64_t n = y.size(0), channels = y.size(1), h = y.size(2), w = y.size(3);
  const int64_t sn = y.stride(0), sc = y.stride(1), sh = y.stride(2), sw = y.stride(3);
  T* data = y.data_ptr<T>();
  const float* shift = corr.data_ptr<float>();
  const float inverse = 1.0f / slope;
  // One pixel's channels; with channels contiguous (channels-last) the
  // loop is unit-stride and the compiler vectorises it.
  auto fix = [&](T* pixel, int64_t region) {
    const float* s = shift + region * channels;
    auto one = [&](T& value, float add) {
      float v = static_cast<float>(value);
      float z = (v > 0.0f ? v : v * inverse) + add;
      value = static_cast<T>(z > 0.0f ? z : z * slope);
    };
    if (sc == 1) {
      for (int64_t c = 0; c < channels; ++c) one(pixel[c], s[c]);
    } else {
      for (int64_t c = 0; c < channels; ++c) one(pixel[c * sc], s[c]);
    }
  };
  auto column_class = [&](int64_t j) { return j == 0 ? 0 : (j == w - 1 ? 2 : 1); };
  // Work item k of an image: its first row (k = 0), its last (k = 1), or
  // the two end pixels of inner row k - 1.
  const int64_t per_image = h;
  at::parallel_for(0, n * per_image, 64, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      T* image = data + (item / per_image) * sn;
      const int64_t k = item % per_image;
      if (k < 2) {
        const int64_t row = k == 0 ? 0 : h - 1;
        for (int64_t j = 0; j < w; ++j) fix(image + row * sh + j * sw, 3 * (2 * k) + column_class(j));
      } else {
        const int64_t i = k - 1;
        fix(image + i * sh, 3);
        fix(image + i * sh + (w - 1) * sw, 5);
      }
    }
  });
}

#if defined(__SSE2__)
// bf16 bits as int16 in an order-preserving form: negative values (sign set)
// have their 15 magnitude bits flipped, so a signed 16-bit max is the max of
// the values. The same map takes the result back.
inline __m128i bf16_order(__m128i b) {
  return _mm_xor_si128(b, _mm_and_si128(_mm_srai_epi16(b, 15), _mm_set1_epi16(0x7FFF)));
}

// Channels-last-3d bf16, C % 8 == 0: each output pixel's channels, 8 at a
// time, are the max of the 8 input pixels' (2x2x2), any NaN among them
// giving NaN as libtorch's kernel does.
void max_pool3d_2x_bf16(const at::Tensor& x, at::Tensor& y) {
  const int64_t n = y.size(0), channels = y.size(1), d = y.size(2), h = y.size(3), w = y.size(4);
  const auto xs = x.strides();
  const auto ys = y.strides();
  const auto* in = reinterpret_cast<const int16_t*>(x.data_ptr<at::BFloat16>());
  auto* out = reinterpret_cast<int16_t*>(y.data_ptr<at::BFloat16>());
  const __m128i magnitude = _mm_set1_epi16(0x7FFF), infinity = _mm_set1_epi16(0x7F80);
  const __m128i nan = _mm_set1_epi16(0x7FC0);
  at::parallel_for(0, n * d * h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / (d * h), z = item / h % d, r = item % h;
      const int16_t* taps[8];
      for (int k = 0; k < 8; ++k)
        taps[k] = in + b * xs[0] + (2 * z + (k >> 2)) * xs[2] + (2 * r + (k >> 1 & 1)) * xs[3] +
                  (k & 1) * xs[4];
      int16_t* row = out + b * ys[0] + z * ys[2] + r * ys[3];
      for (int64_t c0 = 0; c0 < w; ++c0) {
        for (int64_t c = 0; c < channels; c += 8) {
          __m128i best = _mm_set1_epi16(INT16_MIN), any_nan = _mm_setzero_si128();
          for (int k = 0; k < 8; ++k) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(taps[k] + 2 * c0 * xs[4] + c));
            any_nan = _mm_or_si128(any_nan, _mm_cmpgt_epi16(_mm_and_si128(v, magnitude), infinity));
            best = _mm_max_epi16(best, bf16_order(v));
          }
          const __m128i result = bf16_order(best);
          const __m128i mixed = _mm_or_si128(_mm_and_si128(any_nan, nan), _mm_andnot_si128(any_nan, result));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(row + c0 * ys[4] + c), mixed);
        }
      }
    }
  });
}
#endif
}  // namespace

extern "C" {

char* tex_max_pool3d_2x(const tex_tensor x, tex_tensor* out) {
  return protect([&] {
    TORCH_CHECK(x->dim() == 5, "max_pool3d_2x needs [N, C, D, H, W], got ", x->sizes());
#if defined(__SSE2__)
    const bool fast = x->device().is_cpu() && x->scalar_type() == at::kBFloat16 &&
                      x->size(1) % 8 == 0 && x->is_contiguous(c10::MemoryFormat::ChannelsLast3d) &&
                      x->stride(1) == 1;
    if (fast) {
      auto sizes = x->sizes().vec();
      for (int i = 2; i < 5; ++i) sizes[i] /= 2;
      auto y = at::empty(sizes, x->options(), c10::MemoryFormat::ChannelsLast3d);
      max_pool3d_2x_bf16(*x, y);
      *out = new at::Tensor(std::move(y));
      return;
    }
#endif
    *out = new at::Tensor(at::max_pool3d(*x, {2, 2, 2}, {2, 2, 2}));
  });
}

char* tex_leaky_frame_shift(tex_tensor y, const tex_tensor corr, double slope) {
  return protect([&] {
    TORCH_CHECK(y->dim() == 4 && y->size(2) >= 2 && y->size(3) >= 2,
                "frame shift needs [N, C, H, W] with H, W >= 2, got ", y->sizes());
    TORCH_CHECK(y->device().is_cpu(), "frame shift runs on the CPU");
    TORCH_CHECK(slope > 0.0, "frame shift needs a positive slope (an invertible activation)");
    auto c = corr->to(at::kFloat).contiguous();
    TORCH_CHECK(c.dim() == 2 && c.size(0) == 9 && c.size(1) == y->size(1),
                "frame shift: corrections must be [9, ", y->size(1), "], got ", c.sizes());
    switch (y->scalar_type()) {
      case at::kFloat: leaky_frame_shift<float>(*y, c, static_cast<float>(slope)); break;
      case at::kBFloat16: leaky_frame_shift<at::BFloat16>(*y, c, static_cast<float>(slope)); break;
      default: TORCH_CHECK(false, "frame shift: float or bfloat16, got ", y->scalar_type());
    }
  });
}

char* tex_conv_pointwise(const tex_tensor x, const tex_tensor weight, const tex_tensor bias,
                         const int64_t* padding, const int64_t* stride, const int64_t* dilation,
                         int64_t dims, int64_t groups, const char* attr, const double* scalars,
                         int64_t n_scalars, tex_tensor* out) {
  return protect([&] {
    static const std::optional<c10::OperatorHandle> op = conv_pointwise_op();
    TORCH_CHECK(op.has_value(), "this libtorch has no mkldnn::_convolution_pointwise");
    c10::List<std::optional<at::Scalar>> scalar_list;
    for (int64_t i = 0; i < n_scalars; ++i) scalar_list.push_back(at::Scalar(scalars[i]));
    // The boxed call takes the schema's own argument order, so no C++
    // signature of the kernel has to be restated (and kept in step) here.
    torch::jit::Stack stack;
    stack.emplace_back(*x);
    stack.emplace_back(*weight);
    stack.emplace_back(bias ? c10::IValue(*bias) : c10::IValue());
    stack.emplace_back(int_list(padding, dims));
    stack.emplace_back(int_list(stride, dims));
    stack.emplace_back(int_list(dilation, dims));
    stack.emplace_back(groups);
    stack.emplace_back(std::string(attr));
    stack.emplace_back(scalar_list);
    stack.emplace_back(c10::IValue());
    op->callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
  });
}

}  // extern "C"
