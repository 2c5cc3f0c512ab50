// C ABI of the torch-ext shim. Every function returns NULL on success or a
// heap-allocated message (release it with tex_free_error) when libtorch threw,
// so no C++ exception ever unwinds into Rust.
//
// Tensor handles are `at::Tensor*` exactly as torch-sys's libtch allocates
// them: inputs are borrowed, outputs are `new at::Tensor` owned by the caller.
#ifndef TORCH_EXT_H
#define TORCH_EXT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
namespace at { class Tensor; }
typedef at::Tensor* tex_tensor;
extern "C" {
#else
typedef void* tex_tensor;
#endif

void tex_free_error(char* err);

char* tex_autocast_set_enabled(int device_type, bool enabled);
char* tex_autocast_is_enabled(int device_type, bool* out);
char* tex_autocast_set_dtype(int device_type, int scalar_type);
char* tex_autocast_get_dtype(int device_type, int* out);
char* tex_autocast_clear_cache(void);
char* tex_autocast_increment_nesting(int* out);
char* tex_autocast_decrement_nesting(int* out);
char* tex_autocast_set_cache_enabled(bool enabled);
char* tex_autocast_is_cache_enabled(bool* out);

char* tex_contiguous(const tex_tensor t, int memory_format, tex_tensor* out);
char* tex_is_contiguous(const tex_tensor t, int memory_format, bool* out);
// `t.to(memory_format=...)`: the strides `empty_like(t, memory_format)` has,
// even where `contiguous` would keep `t` (a size-1 channel dim).
char* tex_restride(const tex_tensor t, int memory_format, tex_tensor* out);
char* tex_suggest_memory_format(const tex_tensor t, int* out);

// A device event (c10::Event, no CUDA headers needed): created for a CUDA
// device, recorded on that device's current stream, waited on by the host.
typedef void* tex_event;
char* tex_event_new_cuda(int64_t device_index, tex_event* out);
char* tex_event_record(tex_event e);
char* tex_event_synchronize(tex_event e);
void tex_event_free(tex_event e);
// Copies host tensor `src` (pinned) to the event's device on a side stream
// of that device, records `e` there, and makes the device's current
// (compute) stream wait for it: the copy of the next batch overlaps the
// step running on the compute stream, and work queued after this call
// still sees the copied bytes. `*out` is told to the allocator as used by
// the compute stream, so its memory is not reused before that stream is done.
char* tex_event_copy_to_device(tex_event e, const tex_tensor src, tex_tensor* out);

// `t.pin_memory()`: a page-locked copy of a CPU tensor for asynchronous
// host->device copies. No device argument: libtorch 2.11 deprecates it and
// warns on every call that passes one.
char* tex_pin_memory(const tex_tensor t, tex_tensor* out);
// How many handles reach `t`'s storage: views, shallow clones and `t` itself.
char* tex_storage_use_count(const tex_tensor t, int64_t* out);

// Makes CUDA device `device_index` current for this thread, once, so later
// lazy context creation lands on it rather than on device 0.
char* tex_cuda_set_device(int64_t device_index);
char* tex_cuda_current_device(int64_t* out);

// torch.amp's fused unscale: every tensor of `grads` *= inv_scale, and
// found_inf (float [1]) becomes 1 if any of them held an inf or NaN.
char* tex_amp_non_finite_check_and_unscale(const tex_tensor* grads, int64_t n,
                                           tex_tensor found_inf, const tex_tensor inv_scale);

// torch.optim's fused Adam/AdamW step (`fused=True`) over n parameters:
// state_steps are incremented, the step taken unless found_inf (a 0-dim
// float, may be NULL) is 1, and the increment taken back where it is.
char* tex_fused_adam(const tex_tensor* params, const tex_tensor* grads, const tex_tensor* exp_avgs,
                     const tex_tensor* exp_avg_sqs, const tex_tensor* state_steps, int64_t n,
                     double lr, double beta1, double beta2, double weight_decay, double eps,
                     bool decoupled_weight_decay, const tex_tensor found_inf);
// torch.optim's fused SGD step with momentum buffers (dampening 0), unless
// found_inf (0-dim float, may be NULL) is 1.
char* tex_fused_sgd(const tex_tensor* params, const tex_tensor* grads, const tex_tensor* bufs,
                    int64_t n, double lr, double momentum, double weight_decay, bool nesterov,
                    bool is_first_step, const tex_tensor found_inf);

// out: 1 true, 0 false, -1 the name is not a key of at::cpu::get_cpu_capabilities().
char* tex_cpu_feature(const char* name, int* out);
char* tex_cuda_supports_bf16(int64_t device_index, bool* out);

// oneDNN's convolution with its pointwise post-op in one primitive
// (`torch.ops.mkldnn._convolution_pointwise`, what inductor emits on the
// CPU): `attr` is "none", "relu", "leaky_relu" (scalars[0] = slope) or
// "sigmoid"; `dims` entries each of padding, stride and dilation; `bias`
// may be NULL. `tex_conv_pointwise_available` says whether this libtorch
// registers the op at all (built with MKLDNN).
char* tex_conv_pointwise(const tex_tensor x, const tex_tensor weight, const tex_tensor bias,
                         const int64_t* padding, const int64_t* stride, const int64_t* dilation,
                         int64_t dims, int64_t groups, const char* attr, const double* scalars,
                         int64_t n_scalars, tex_tensor* out);
char* tex_conv_pointwise_available(bool* out);

// In place on `y` ([N, C, H, W], float or bf16, H and W >= 2), the output
// of a LeakyReLU(slope) over a 3x3 convolution padded by one: on the
// one-pixel frame, each value is taken back before the activation, has
// corr[region][c] added (corr: float [9, C], region = 3 * row class + column
// class, classes 0 first, 1 inner, 2 last), and goes through the
// activation again. Inner pixels are not touched.
char* tex_leaky_frame_shift(tex_tensor y, const tex_tensor corr, double slope);

// max_pool3d(x, kernel 2, stride 2) of a [N, C, D, H, W] CPU tensor, NaN
// propagating: for channels-last-3d bf16 with C a multiple of 8, an SSE2
// kernel without the int64 indices libtorch's CPU max_pool3d always
// computes and drops; anything else goes to libtorch's.
char* tex_max_pool3d_2x(const tex_tensor x, tex_tensor* out);

// at::parallel_for over [begin, end) with `grain`: `body(ctx, b, e)` runs on
// libtorch's own OpenMP team for disjoint chunks covering the range. The
// body must not throw or unwind.
typedef void (*tex_range_fn)(void* ctx, int64_t begin, int64_t end);
char* tex_parallel_for(int64_t begin, int64_t end, int64_t grain, tex_range_fn body, void* ctx);

#ifdef __cplusplus
}
#endif
#endif
