#pragma once
// dnnl_model: a staged_model's batched network on oneDNN (Debian's libdnnl-dev, 2.6), the fast
// backend of the demo networks; batched_model.hpp (Eigen) stays the fallback and the reference.
// Built only when CMake finds oneDNN (EARLYEXIT_HAVE_DNNL); the library core never includes it.
//
// What runs where:
//   - every convolution of a stage (its stage_program, stage_program.hpp: standard, pointwise
//     and depthwise) is one oneDNN convolution primitive over the rows of the batch, with the
//     bias, the activation, a residual sum and the activation after it fused as post-ops (a
//     3x3 layer with a residual, where Winograd can run it: the residual copied into the
//     destination and summed there, the post-op Winograd takes);
//   - a head (its head_program, stage_program.hpp) is a chain of oneDNN primitives over the
//     listed rows at once, in float32: pooling (a mixed pooling is an average and a max pool,
//     then their weighted sum), a convolution, inner products with the activation fused, the
//     last one writing the logits; the listed rows are gathered first unless they are rows
//     0..m-1, and bf16 maps are reordered to float32 first (the heads stay float32). With
//     dnnl_options::eigen_heads, the model's own (Eigen) heads run instead, on each listed
//     row's map converted to CHW float (the reference, and the only path for a head type
//     without program()).
//
// Layout: N-major, so that compaction and append move whole samples (one memcpy per row):
// each row's map is contiguous, in oneDNN's blocked format (dnnl_layout::blocked, the default:
// nChw16c where the CPU has AVX-512, which its AVX-512 kernels run fastest, nChw8c elsewhere,
// which its AVX2 kernels take: on an AVX2 CPU nChw16c leaves oneDNN only its reference kernels,
// hundreds of times slower) or NHWC. The network input is plain NCHW.
// Precision: float32, or bfloat16 maps and weights (dnnl_precision::bf16: float32 accumulation
// and bias, the heads in float32), opt in.
//
// Primitives: one per (convolution, rows), created lazily the first time a batch of that many
// rows reaches it (1-5 ms each: a batch that shrinks as samples exit meets many row counts) and
// kept in the model, shared by every state and thread; prepare(rows) makes them all up front.
// Weights are reordered once per format the primitives ask for. A state keeps its own memory
// objects per (convolution, rows) (their data handles are set at each call) and the scratchpad
// (user mode). Each call runs on one oneDNN (OpenMP) thread: parallelism stays with
// parallel_runner's workers.
//
// Allocation: once a state has met a row count (or prepare(state, rows)), this code allocates
// nothing per batch; oneDNN's execute builds its own argument maps (8 small allocations per
// primitive call inside libdnnl, counted in tests/test_common_dnnl_model.cpp).

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/core.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <earlyexit/batch_network.hpp>
#include <earlyexit/earlyexit.hpp>

#include "feature_state.hpp"
#include "nn.hpp"
#include "stage_program.hpp"
#include "staged_model.hpp"

namespace earlyexit::demo {

/// Element type of the maps and weights of a dnnl_model.
enum class dnnl_precision : std::uint8_t { f32, bf16 };
/// Layout of each row's maps: oneDNN's blocked nChw16c, or NHWC.
enum class dnnl_layout : std::uint8_t { blocked, nhwc };

[[nodiscard]] inline std::string_view to_string(dnnl_precision p) noexcept { return p == dnnl_precision::f32 ? "fp32" : "bf16"; }
[[nodiscard]] inline std::string_view to_string(dnnl_layout l) noexcept { return l == dnnl_layout::blocked ? "blocked" : "nhwc"; }

/// How a dnnl_model runs its convolutions.
struct dnnl_options {
    dnnl_precision precision = dnnl_precision::f32;
    dnnl_layout layout = dnnl_layout::blocked;
    /// Let oneDNN pick Winograd (F(4x4, 3x3)) for a 3x3 convolution where it is faster: float32
    /// and the blocked layout only (ignored otherwise). It sums in another order: the logits of
    /// both demo networks still equal the Eigen path's within 1e-6 relative (the parity test).
    bool allow_winograd = true;
    /// Run the heads on Eigen, one row at a time, each row's map converted to CHW float (the
    /// reference path) instead of as oneDNN primitives over the batch.
    bool eigen_heads = false;
};

namespace dnnl_detail {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

/// Channels per block of the blocked layout on this CPU: 16 with AVX-512 (nChw16c), 8 without
/// (nChw8c, the block of oneDNN's AVX2 kernels).
[[nodiscard]] inline std::size_t block_channels() {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto avx512 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & avx512) == avx512 ? 16 : 8;
}
/// Whether oneDNN 2.6 has bf16 kernels on this CPU (it needs AVX-512; AMX and AVX512_BF16 make
/// them fast, plain AVX-512 emulates the bf16 dot products).
[[nodiscard]] inline bool cpu_has_bf16() { return block_channels() == 16; }
/// Whether oneDNN 2.6 has its Winograd convolution on this CPU (AVX-512 only).
[[nodiscard]] inline bool cpu_has_winograd() { return block_channels() == 16; }

/// Bytes aligned for AVX-512 loads, allocated once.
class aligned_bytes {
public:
    aligned_bytes() = default;
    explicit aligned_bytes(std::size_t n) : p_(n ? static_cast<std::byte*>(::operator new(n, std::align_val_t{64})) : nullptr), n_(n) {
        if (p_) std::memset(p_, 0, n);
    }
    aligned_bytes(aligned_bytes&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    aligned_bytes& operator=(aligned_bytes&& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
        return *this;
    }
    aligned_bytes(const aligned_bytes&) = delete;
    aligned_bytes& operator=(const aligned_bytes&) = delete;
    ~aligned_bytes() {
        if (p_) ::operator delete(p_, std::align_val_t{64});
    }
    [[nodiscard]] std::byte* data() const noexcept { return p_; }
    [[nodiscard]] std::size_t size() const noexcept { return n_; }

private:
    std::byte* p_ = nullptr;
    std::size_t n_ = 0;
};

/// A convolution's primitive for one row count, shared by every state of the model (oneDNN
/// primitives may run on many threads at once), with its weights in the primitive's format and
/// its bias (memory objects only read).
struct conv_primitive {
    dnnl::convolution_forward::primitive_desc pd;
    dnnl::primitive prim;
    dnnl::memory weights, bias;
    int add_arg = 0;  ///< DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1 when a sum is fused
    /// The residual is copied into the destination first and summed there (a sum post-op):
    /// Winograd takes that post-op, not a binary one. dst_bytes: the bytes to copy.
    bool add_by_copy = false;
    std::size_t dst_bytes = 0;
    std::string impl;  ///< the kernel oneDNN chose (e.g. "jit:avx512_core")
};

/// Keeps the calling thread's OpenMP team to one thread while it lives, then restores it. A
/// oneDNN primitive fixes its thread count when it is made (from omp_get_max_threads()) and
/// runs that many: made and run under this guard, every call stays on its worker's thread.
class one_omp_thread {
public:
    one_omp_thread() noexcept : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
    ~one_omp_thread() { omp_set_num_threads(saved_); }
    one_omp_thread(const one_omp_thread&) = delete;
    one_omp_thread& operator=(const one_omp_thread&) = delete;

private:
    int saved_;
};

/// Entries of type T per (item, rows), made on first use by whichever thread meets them:
/// readers load a slot's pointer (acquire); a maker takes the mutex, makes the entry once (on
/// one OpenMP thread) and publishes it (release). Entries live as long as the table.
template <class T>
struct lazy_table {
    lazy_table(std::size_t items, std::size_t capacity) : slots(items * (capacity + 1)), row_slots(capacity + 1) {}

    /// The entry of (item, rows), make() -> std::unique_ptr<T> called (under the mutex) the first time.
    template <class Make>
    const T& get(std::size_t item, std::size_t rows, Make make) {
        auto& slot = slots[item * row_slots + rows];
        if (const auto* p = slot.load(std::memory_order_acquire)) return *p;
        const std::lock_guard lock(mutex);
        if (const auto* p = slot.load(std::memory_order_relaxed)) return *p;
        const one_omp_thread one;
        owned.push_back(make());
        slot.store(owned.back().get(), std::memory_order_release);
        return *owned.back();
    }

    /// The float32 weights at `data` (descriptor `plain`) in the format `want`, reordered the
    /// first time an entry asks for that format and kept, per source array: a layer shared by
    /// several entries (MobileNetV2's classifier, in every exit) is kept once per format, so
    /// that its copies do not crowd the cache. Call from make() (under the mutex).
    dnnl::memory weights_in(const dnnl::memory::desc& want, const dnnl::memory::desc& plain, const float* data,
                            const dnnl::engine& eng) {
        auto src_it = std::find_if(weights.begin(), weights.end(), [&](const auto& w) { return w.first == data; });
        if (src_it == weights.end()) src_it = weights.insert(weights.end(), {data, {}});
        auto& formats = src_it->second;
        const auto it = std::find_if(formats.begin(), formats.end(), [&](const auto& w) { return w.first == want; });
        if (it != formats.end()) return it->second;
        dnnl::memory w(want, eng);
        dnnl::memory src(plain, eng, const_cast<float*>(data));
        dnnl::stream strm(eng);
        dnnl::reorder(src, w).execute(strm, src, w);
        strm.wait();
        formats.emplace_back(want, w);
        return w;
    }

    std::vector<std::atomic<const T*>> slots;  // [item * row_slots + rows]
    std::size_t row_slots;
    std::mutex mutex;  // guards owned, weights and creation
    std::vector<std::unique_ptr<T>> owned;
    std::vector<std::pair<const float*, std::vector<std::pair<dnnl::memory::desc, dnnl::memory>>>> weights;
};

/// Every (convolution, rows) primitive of a model.
using primitive_table = lazy_table<conv_primitive>;

/// A state's memory objects for one (convolution, rows): their data handles are set at each call.
struct conv_memory {
    const conv_primitive* prim = nullptr;
    dnnl::memory src, dst, add, scratch;
};

/// The buffers a head's chain reads and writes: the map (the state's current map, or the
/// listed rows gathered), three float32 scratch buffers of the state, the logits.
enum class head_buffer : unsigned char { map, f0, f1, f2, logits };

/// One step of a head's chain for one row count: a primitive from one buffer into another,
/// or (mix, no primitive) to = weight * from + (1 - weight) * to over `floats` floats.
struct head_step {
    enum class kind : unsigned char { primitive, mix };
    kind what = kind::primitive;
    dnnl::primitive prim;
    dnnl::memory::desc src, dst, scratch;
    dnnl::memory weights, bias;  // empty where the primitive takes none
    head_buffer from = head_buffer::map, to = head_buffer::f0;
    float weight = 0;
    std::size_t floats = 0;
    std::string impl;
};

/// A head's chain for one row count, shared by every state of the model.
struct head_primitive {
    std::vector<head_step> steps;
};

/// Every (head, rows) chain of a model.
using head_table = lazy_table<head_primitive>;

/// A state's memory objects for one (head, rows): per step its source, destination and
/// scratchpad (data handles set at each call).
struct head_memory {
    const head_primitive* prim = nullptr;
    std::vector<std::array<dnnl::memory, 3>> steps;
};

/// Appends activation a as an eltwise post-op (none: nothing).
inline void append_activation(dnnl::post_ops& po, nn::activation a) {
    if (a == nn::activation::relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    if (a == nn::activation::relu6) po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
}

/// Executes primitive p with the n arguments (data handles already set) on stream s and waits:
/// the C API, so that the arguments stay on the caller's stack.
inline void execute(const dnnl::primitive& p, const dnnl::stream& s, int n, const dnnl_exec_arg_t* args) noexcept {
    const dnnl_status_t status = dnnl_primitive_execute(p.get(), s.get(), n, args);
    EARLYEXIT_ASSERT(status == dnnl_success);
    (void)status;
    dnnl_stream_wait(s.get());
}

[[nodiscard]] inline float bf16_to_float(std::uint16_t v) noexcept { return std::bit_cast<float>(std::uint32_t{v} << 16); }
/// Rounds to the nearest bfloat16, ties to even (what oneDNN's reorders do); NaN stays NaN.
[[nodiscard]] inline std::uint16_t float_to_bf16(float f) noexcept {
    const auto u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
    return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace dnnl_detail

/// The batch state of a dnnl_model (make it with dnnl_model::make_state): capacity rows of
/// maps in the model's layout and precision (see the header comment), N-major, allocated once;
/// its memory objects per (convolution, rows), its scratchpad and stream; a float staging area
/// for the inputs (input_row, begin). Move-only; one thread at a time.
class dnnl_batch_state {
public:
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    /// Rows 0..rows-1 in use, for checks.
    [[nodiscard]] nn::shape3 shape() const noexcept { return shape_; }

    /// Where to write row r's network input, a CHW float map (r < capacity()); then begin().
    [[nodiscard]] float* input_row(std::size_t r) noexcept { return staging_.data() + r * input_floats_; }

    /// Makes the inputs written to input_row(0..rows-1), of shape s, the current map (converted
    /// to the model's precision). Throws earlyexit::error naming the value when rows exceeds the
    /// capacity or s is not the model's input shape.
    void begin(nn::shape3 s, std::size_t rows) {
        if (rows > capacity_) fail("dnnl_batch_state: begin with {} rows, the capacity is {}", rows, capacity_);
        if (s.size() != input_floats_)
            fail("dnnl_batch_state: input of {}x{}x{} = {} floats, the model's input has {}", s.c, s.h, s.w, s.size(),
                 input_floats_);
        const std::size_t n = rows * input_floats_, hw = s.positions(), cs = static_cast<std::size_t>(s.c);
        // Element i of the buffer takes staging element from(i): the same (NCHW) or HWC per row.
        const auto from = [&](std::size_t i) {
            if (!nhwc_) return i;
            const std::size_t r = i / input_floats_, q = i % input_floats_;
            return r * input_floats_ + (q % cs) * hw + q / cs;
        };
        if (bf16_) {
            auto* out = reinterpret_cast<std::uint16_t*>(bufs_[0].data());
            for (std::size_t i = 0; i < n; ++i) out[i] = dnnl_detail::float_to_bf16(staging_[from(i)]);
        } else if (nhwc_) {
            auto* out = reinterpret_cast<float*>(bufs_[0].data());
            for (std::size_t i = 0; i < n; ++i) out[i] = staging_[from(i)];
        } else {
            std::memcpy(bufs_[0].data(), staging_.data(), n * sizeof(float));
        }
        cur_ = 0;
        shape_ = s;
        row_bytes_ = input_floats_ * (bf16_ ? 2 : 4);
        holding_ = false;
    }

    /// Keeps the listed rows (strictly increasing): row keep[j] becomes row j (whole rows move).
    void compact(std::span<const std::size_t> keep) noexcept {
        compact_rows(bufs_[cur_].data(), row_bytes_, keep);
        if (holding_) compact_rows(held_.data(), held_row_bytes_, keep);
    }

    /// Copies src's rows 0..src_rows-1 after rows 0..rows-1 (both at the same stage; see
    /// batch_feature_state::append).
    void append(std::size_t rows, const dnnl_batch_state& src, std::size_t src_rows) noexcept {
        EARLYEXIT_ASSERT(&src != this && rows + src_rows <= capacity_ && src_rows <= src.capacity_);
        EARLYEXIT_ASSERT(rows == 0 || (shape_ == src.shape_ && holding_ == src.holding_));
        shape_ = src.shape_;
        row_bytes_ = src.row_bytes_;
        held_row_bytes_ = src.held_row_bytes_;
        holding_ = src.holding_;
        std::memcpy(bufs_[cur_].data() + rows * row_bytes_, src.bufs_[src.cur_].data(), src_rows * row_bytes_);
        if (holding_) std::memcpy(held_.data() + rows * held_row_bytes_, src.held_.data(), src_rows * held_row_bytes_);
    }

private:
    template <class Stage, class Head>
    friend class dnnl_model;

    dnnl_batch_state(std::size_t capacity, std::size_t row_bytes, std::size_t input_floats, bool can_hold, bool bf16,
                     bool nhwc, std::size_t convs, std::size_t head_map_floats, std::size_t head_ws, std::size_t heads,
                     std::size_t head_row_bytes, const dnnl::engine& eng)
        : capacity_(capacity),
          input_floats_(input_floats),
          bf16_(bf16),
          nhwc_(nhwc),
          staging_(capacity * input_floats),
          held_(can_hold ? capacity * row_bytes : 0),
          memories_(convs * (capacity + 1)),
          stream_(eng),
          head_memories_(heads * (capacity + 1)),
          head_view_(head_map_floats, head_ws) {
        if (capacity_ == 0) fail("dnnl_batch_state: capacity 0; a batch state holds at least one row");
        for (auto& b : bufs_) b = dnnl_detail::aligned_bytes(capacity * row_bytes);
        for (auto& b : head_bufs_) b = dnnl_detail::aligned_bytes(capacity * head_row_bytes);
    }

    static void compact_rows(std::byte* x, std::size_t row_bytes, std::span<const std::size_t> keep) noexcept {
        for (std::size_t j = 0; j < keep.size(); ++j)
            if (keep[j] != j) std::memcpy(x + j * row_bytes, x + keep[j] * row_bytes, row_bytes);
    }

    [[nodiscard]] std::byte* buffer(nn::slot s) noexcept {
        switch (s) {
            case nn::slot::current: return bufs_[cur_].data();
            case nn::slot::next: return bufs_[1 - cur_].data();
            case nn::slot::scratch0: return bufs_[2].data();
            case nn::slot::scratch1: return bufs_[3].data();
            case nn::slot::held: return held_.data();
        }
        return nullptr;
    }

    std::size_t capacity_, input_floats_;
    bool bf16_, nhwc_;
    std::array<dnnl_detail::aligned_bytes, 4> bufs_;  // 0/1: stage input/output, 2/3: scratch
    std::vector<float> staging_;                      // the inputs before begin()
    dnnl_detail::aligned_bytes held_;
    mutable dnnl_detail::aligned_bytes scratchpad_;      // grows to the largest primitive's
    std::vector<dnnl_detail::conv_memory> memories_;  // [conv * (capacity + 1) + rows]
    dnnl::stream stream_;
    // The heads run on a const state (batched_network): what they write is scratch.
    mutable std::vector<dnnl_detail::head_memory> head_memories_;  // [head * (capacity + 1) + rows]
    std::array<dnnl_detail::aligned_bytes, 3> head_bufs_;           // float32 maps of the heads' chains
    mutable feature_state head_view_;  // one row as CHW float, for the Eigen heads
    std::size_t cur_ = 0, row_bytes_ = 0, held_row_bytes_ = 0;
    nn::shape3 shape_{}, held_shape_{};
    bool holding_ = false;
};

/// The batched network of a staged_model on oneDNN (see the header comment):
/// earlyexit::batched_network over dnnl_batch_state, like batched_model over
/// batch_feature_state. Shares the model's layers and heads; info() is the per-sample network's.
template <class Stage, class Head>
class dnnl_model {
public:
    using scalar_type = float;
    using batch_state_type = dnnl_batch_state;

    /// The oneDNN form of `model` for batches of up to `capacity` rows. Throws earlyexit::error
    /// when capacity is 0, or when oneDNN cannot make a convolution (its message and the layer).
    dnnl_model(const staged_model<Stage, Head>& model, std::size_t capacity, dnnl_options opt = {})
        : net_(model.network()), capacity_(capacity), opt_(opt), input_(model.input_shape()), holds_(model.holds_maps()),
          eng_(dnnl::engine::kind::cpu, 0) {
        if (capacity_ == 0) fail("dnnl_model: capacity 0; a batch holds at least one row");
        if (opt_.precision == dnnl_precision::bf16 && !dnnl_detail::cpu_has_bf16())
            fail("dnnl_model: bf16 needs a CPU with AVX-512 (oneDNN {}.{} has no bf16 kernels without it); this one "
                 "has AVX2 at most: use fp32",
                 dnnl_version()->major, dnnl_version()->minor);
        std::size_t row_bytes = input_.size() * elem();
        for (std::size_t i = 0; i < model.num_stages(); ++i) {
            const auto& st = model.stage(i).stage;
            keep_.push_back(st);
            nn::stage_program p = st->program();
            for (const nn::conv_step& c : p.steps) {
                row_bytes = std::max({row_bytes, map_row_bytes(c.in), map_row_bytes(c.conv->output_shape(c.in))});
            }
            programs_.push_back(std::move(p));
        }
        for (const auto& p : programs_) {
            first_step_.push_back(steps_.size());
            out_row_bytes_.push_back(map_row_bytes(p.out));
            steps_.insert(steps_.end(), p.steps.begin(), p.steps.end());
        }
        first_step_.push_back(steps_.size());
        row_bytes_ = row_bytes;
        for (std::size_t k = 0; k < model.num_heads(); ++k) {
            heads_.push_back(model.head_at(k).head);
            head_ws_ = std::max(head_ws_, static_cast<std::size_t>(heads_.back()->workspace_size()));
        }
        head_map_ = model.max_map_size();
        if constexpr (requires(const Head& h) { h.program(); }) {
            if (!opt_.eigen_heads) {
                for (std::size_t k = 0; k < heads_.size(); ++k) {
                    nn::head_program hp = heads_[k]->program();
                    const nn::shape3 at = programs_[model.head_at(k).after].out;
                    if (hp.in != at)
                        fail("dnnl_model: head {} reads a {}x{}x{} map, its stage leaves {}x{}x{}", k, hp.in.c, hp.in.h,
                             hp.in.w, at.c, at.h, at.w);
                    head_programs_.push_back(std::move(hp));
                }
                head_table_ = std::make_shared<dnnl_detail::head_table>(heads_.size(), capacity_);
            }
        }
        table_ = std::make_shared<dnnl_detail::primitive_table>(steps_.size(), capacity_);
        // oneDNN keeps compiled kernels in a process-wide cache (1024 by default): room for
        // every (convolution, rows) of this model, so that none is compiled twice.
        const auto need = static_cast<int>(std::min<std::size_t>(steps_.size() * capacity_ + 1024, 1 << 16));
        if (dnnl::get_primitive_cache_capacity() < need) dnnl::set_primitive_cache_capacity(need);
        // Every convolution for one row and for capacity rows now, so that a layer oneDNN
        // cannot run fails here, by value, not on the hot path.
        for (std::size_t l = 0; l < steps_.size(); ++l) {
            (void)primitive(l, 1);
            (void)primitive(l, capacity_);
        }
        // The heads' chains too; the states' float32 buffers hold the largest map a chain at
        // capacity rows writes (N-major: capacity times one row's).
        for (std::size_t k = 0; k < head_programs_.size(); ++k) {
            (void)head_chain(k, 1);
            for (const auto& st : head_chain(k, capacity_).steps)  // a mix writes what a pooling wrote
                if (st.what == dnnl_detail::head_step::kind::primitive && st.to != dnnl_detail::head_buffer::logits)
                    head_row_bytes_ = std::max(head_row_bytes_, st.dst.get_size() / capacity_);
        }
    }

    [[nodiscard]] network_info info() const noexcept { return net_.info(); }
    [[nodiscard]] const dynamic_network<feature_state>& network() const noexcept { return net_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] const dnnl_options& options() const noexcept { return opt_; }
    [[nodiscard]] nn::shape3 input_shape() const noexcept { return input_; }
    /// Head scratch (the Eigen heads, one row at a time; the oneDNN heads use the state's).
    [[nodiscard]] std::size_t batch_workspace_size() const noexcept { return head_ws_; }
    /// Whether the heads run as oneDNN primitives (false: the model's Eigen heads).
    [[nodiscard]] bool heads_on_dnnl() const noexcept { return !head_programs_.empty(); }

    /// A state of capacity() rows (allocates; make one per thread and reuse it).
    [[nodiscard]] dnnl_batch_state make_state() const { return make_state(capacity_); }
    /// A state of `rows` rows; throws earlyexit::error for 0 rows or more than capacity().
    [[nodiscard]] dnnl_batch_state make_state(std::size_t rows) const {
        if (rows > capacity_) fail("dnnl_model: a state of {} rows exceeds the capacity {}", rows, capacity_);
        return dnnl_batch_state(rows, row_bytes_, input_.size(), holds_, opt_.precision == dnnl_precision::bf16,
                                opt_.layout == dnnl_layout::nhwc, steps_.size(), head_map_, head_ws_, head_programs_.size(),
                                head_row_bytes_, eng_);
    }

    /// Creates the primitives of every convolution for each row count 1..rows (at most
    /// capacity()), so that no later call compiles one (otherwise each is made the first time a
    /// batch of that many rows reaches it: ~1-5 ms each). Thread-safe. Throws earlyexit::error
    /// when oneDNN cannot make one.
    void prepare(std::size_t rows) const {
        for (std::size_t r = 1; r <= std::min(rows, capacity_); ++r) {
            for (std::size_t l = 0; l < steps_.size(); ++l) (void)primitive(l, r);
            for (std::size_t k = 0; k < head_programs_.size(); ++k) (void)head_chain(k, r);
        }
    }
    /// The same, and s's memory objects for them (so that nothing on its hot path allocates).
    void prepare(dnnl_batch_state& s, std::size_t rows) const {
        for (std::size_t r = 1; r <= std::min(rows, s.capacity()); ++r) {
            for (std::size_t l = 0; l < steps_.size(); ++l) (void)memory_for(s, l, r);
            for (std::size_t k = 0; k < head_programs_.size(); ++k) (void)head_memory_for(s, k, r);
        }
    }

    /// The kernel oneDNN runs convolution l (in stage order) with at `rows` rows, e.g.
    /// "jit:avx512_core" or "jit_wino_4x3:avx512_core" (creates the primitive when needed).
    [[nodiscard]] std::string_view implementation(std::size_t l, std::size_t rows) const { return primitive(l, rows).impl; }
    /// The kernels of head k's chain at `rows` rows, in order, e.g. "jit:avx512_core,
    /// jit:avx512_core, mix, x64:gemm:jit"; "eigen" when the heads run on Eigen.
    [[nodiscard]] std::string head_implementation(std::size_t k, std::size_t rows) const {
        if (head_programs_.empty()) return "eigen";
        std::string out;
        for (const auto& st : head_chain(k, rows).steps) out += (out.empty() ? "" : ", ") + st.impl;
        return out;
    }
    /// The maps' layout, for reports: "nChw16c", "nChw8c" (the blocked layout on this CPU) or "nhwc".
    [[nodiscard]] std::string layout_name() const {
        return opt_.layout == dnnl_layout::nhwc ? "nhwc" : fmt::format("nChw{}c", block_);
    }
    /// What runs the convolutions, for reports: "oneDNN 2.6.3, fp32, nChw16c, Winograd allowed".
    [[nodiscard]] std::string backend() const {
        const dnnl_version_t* v = dnnl_version();
        const bool wino = opt_.allow_winograd && opt_.precision == dnnl_precision::f32 && opt_.layout == dnnl_layout::blocked &&
                          dnnl_detail::cpu_has_winograd();
        return fmt::format("oneDNN {}.{}.{}, {}, {}{}{}", v->major, v->minor, v->patch, to_string(opt_.precision),
                           layout_name(), wino ? ", Winograd allowed" : "",
                           head_programs_.empty() ? ", heads on Eigen" : "");
    }
    /// Every convolution, in stage order (the stages' programs, stage_program.hpp).
    [[nodiscard]] const std::vector<nn::conv_step>& convolutions() const noexcept { return steps_; }
    /// Convolution l alone on rows 0..rows-1 of s, between the buffers its program names,
    /// whatever they hold (a benchmark of one layer; the state's map is left as it was).
    void run_convolution(std::size_t l, dnnl_batch_state& s, std::size_t rows) const noexcept {
        const dnnl_detail::one_omp_thread one;
        const nn::conv_step& c = steps_[l];
        EARLYEXIT_ASSERT(s.held_.size() > 0 || (c.src != nn::slot::held && c.add != nn::slot::held));
        run(memory_for(s, l, rows), s, s.buffer(c.src), s.buffer(c.dst), c.add ? s.buffer(*c.add) : nullptr);
    }
    /// Convolutions in stage order.
    [[nodiscard]] std::size_t num_convolutions() const noexcept { return steps_.size(); }

    /// Stage p on rows 0..rows-1. A primitive or memory object met for the first time is made
    /// here (warm-up; prepare() does it in advance). oneDNN accepted every convolution at one
    /// row and at capacity() rows when the model was made; should it refuse another row count
    /// here, the call cannot report it (noexcept) and the program terminates.
    void run_batch_stage(std::size_t p, dnnl_batch_state& s, std::size_t rows) const noexcept {
        const dnnl_detail::one_omp_thread one;
        const nn::stage_program& prog = programs_[p];
        for (std::size_t l = first_step_[p]; l < first_step_[p + 1]; ++l) {
            const nn::conv_step& c = steps_[l];
            run(memory_for(s, l, rows), s, s.buffer(c.src), s.buffer(c.dst), c.add ? s.buffer(*c.add) : nullptr);
        }
        if (prog.holds_input) {  // keep the input as the held map: the buffers trade places, no copy
            std::swap(s.held_, s.bufs_[s.cur_]);
            s.held_shape_ = s.shape_;
            s.held_row_bytes_ = s.row_bytes_;
            s.holding_ = true;
        }
        s.cur_ = 1 - s.cur_;
        s.shape_ = prog.out;
        s.row_bytes_ = out_row_bytes_[p];
        if (prog.releases_held) s.holding_ = false;
    }

    /// Head k on the listed rows (strictly increasing): logits row j is row list[j]'s. On
    /// oneDNN, its chain over the rows at once (see the header comment); a chain or memory
    /// object met for the first time is made here, like run_batch_stage's.
    void run_batch_head(std::size_t k, const dnnl_batch_state& s, std::span<const std::size_t> list,
                        std::span<float> logits, std::span<float> ws) const noexcept {
        if (list.empty()) return;
        if (!head_programs_.empty()) {
            run_head_chain(k, s, list, logits);
            return;
        }
        const Head& h = *heads_[k];
        const std::size_t c = h.num_classes();
        feature_state& v = s.head_view_;
        for (std::size_t j = 0; j < list.size(); ++j) {
            to_chw(s.bufs_[s.cur_].data() + list[j] * s.row_bytes_, s.shape_, v.input());
            v.begin(s.shape_);
            h(v, logits.subspan(j * c, c), ws);
        }
    }

    void compact(dnnl_batch_state& s, std::span<const std::size_t> keep) const noexcept { s.compact(keep); }
    void append(dnnl_batch_state& dst, std::size_t dst_rows, dnnl_batch_state& src, std::size_t src_rows) const noexcept {
        dst.append(dst_rows, src, src_rows);
    }

    /// Bytes of one row's map of shape m in this model's layout and precision.
    [[nodiscard]] std::size_t map_row_bytes(nn::shape3 m) const { return desc(1, m).get_size(); }

    /// Writes one row's map (shape m, this model's layout and precision) as CHW float.
    void to_chw(const std::byte* row, nn::shape3 m, float* out) const noexcept {
        if (opt_.precision == dnnl_precision::bf16)
            to_chw(reinterpret_cast<const std::uint16_t*>(row), m, out, [](std::uint16_t v) { return dnnl_detail::bf16_to_float(v); });
        else
            to_chw(reinterpret_cast<const float*>(row), m, out, [](float v) { return v; });
    }

private:
    /// to_chw for elements of type T, converted to float by cvt. The blocked layout is a
    /// transpose of each block of b channels ([position][b] -> [b][position], b = 16 or 8), done
    /// in tiles of b positions so that the b rows read and written stay in cache.
    template <class T, class Cvt>
    void to_chw(const T* in, nn::shape3 m, float* out, Cvt cvt) const noexcept {
        const std::size_t hw = m.positions(), cs = static_cast<std::size_t>(m.c);
        if (opt_.layout == dnnl_layout::blocked && m == input_) {  // the input is NCHW
            for (std::size_t i = 0; i < m.size(); ++i) out[i] = cvt(in[i]);
        } else if (opt_.layout == dnnl_layout::nhwc) {
            for (std::size_t p = 0; p < hw; ++p)
                for (std::size_t c = 0; c < cs; ++c) out[c * hw + p] = cvt(in[p * cs + c]);
        } else {
            const std::size_t b = block_;
            for (std::size_t c0 = 0; c0 < cs; c0 += b) {
                const std::size_t nc = std::min(b, cs - c0);
                const T* src = in + c0 * hw;  // the block's [position][b]
                float* dst = out + c0 * hw;
                for (std::size_t p0 = 0; p0 < hw; p0 += b) {
                    const std::size_t np = std::min(b, hw - p0);
                    for (std::size_t i = 0; i < nc; ++i)
                        for (std::size_t p = p0; p < p0 + np; ++p) dst[i * hw + p] = cvt(src[p * b + i]);
                }
            }
        }
    }

    /// Runs head k's chain on the listed rows of s (see run_batch_head).
    void run_head_chain(std::size_t k, const dnnl_batch_state& s, std::span<const std::size_t> list,
                        std::span<float> logits) const noexcept {
        using dnnl_detail::head_buffer;
        const dnnl_detail::one_omp_thread one;
        const std::size_t m = list.size();
        const dnnl_detail::head_memory& hm = head_memory_for(s, k, m);
        std::byte* map = s.bufs_[s.cur_].data();
        if (list.back() + 1 != m) {  // increasing and not 0..m-1: gather them (scratch0 is free between stages)
            std::byte* g = s.bufs_[2].data();
            for (std::size_t j = 0; j < m; ++j) std::memcpy(g + j * s.row_bytes_, map + list[j] * s.row_bytes_, s.row_bytes_);
            map = g;
        }
        const auto buffer = [&](head_buffer b) -> std::byte* {
            switch (b) {
                case head_buffer::map: return map;
                case head_buffer::f0: return s.head_bufs_[0].data();
                case head_buffer::f1: return s.head_bufs_[1].data();
                case head_buffer::f2: return s.head_bufs_[2].data();
                case head_buffer::logits: return reinterpret_cast<std::byte*>(logits.data());
            }
            return nullptr;
        };
        const auto& steps = hm.prim->steps;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            const dnnl_detail::head_step& st = steps[i];
            if (st.what == dnnl_detail::head_step::kind::mix) {
                const auto* from = reinterpret_cast<const float*>(buffer(st.from));
                auto* to = reinterpret_cast<float*>(buffer(st.to));
                const float w = st.weight;
                for (std::size_t e = 0; e < st.floats; ++e) to[e] = w * from[e] + (1.f - w) * to[e];
                continue;
            }
            const auto& mem = hm.steps[i];
            dnnl_memory_set_data_handle(mem[0].get(), buffer(st.from));
            dnnl_memory_set_data_handle(mem[1].get(), buffer(st.to));
            dnnl_memory_set_data_handle(mem[2].get(), s.scratchpad_.data());
            std::array<dnnl_exec_arg_t, 5> args{{{DNNL_ARG_SRC, mem[0].get()}, {DNNL_ARG_DST, mem[1].get()}, {DNNL_ARG_SCRATCHPAD, mem[2].get()}, {}, {}}};
            int n = 3;
            if (st.weights) args[n++] = {DNNL_ARG_WEIGHTS, st.weights.get()};
            if (st.bias) args[n++] = {DNNL_ARG_BIAS, st.bias.get()};
            dnnl_detail::execute(st.prim, s.stream_, n, args.data());
        }
    }

    /// Head k's chain for `rows` rows, created on first use (thread-safe, like primitive()).
    const dnnl_detail::head_primitive& head_chain(std::size_t k, std::size_t rows) const {
        EARLYEXIT_ASSERT(rows >= 1 && rows <= capacity_);
        return head_table_->get(k, rows, [&] { return make_head_chain(k, rows); });
    }

    /// s's memory objects for head k's chain at `rows` rows, created on first use; the
    /// state's scratchpad grows to what its primitives need.
    const dnnl_detail::head_memory& head_memory_for(const dnnl_batch_state& s, std::size_t k, std::size_t rows) const {
        auto& hm = s.head_memories_[k * (s.capacity() + 1) + rows];
        if (hm.prim) return hm;
        const auto& chain = head_chain(k, rows);
        hm.steps.clear();
        for (const auto& st : chain.steps) {
            if (st.what == dnnl_detail::head_step::kind::mix) {
                hm.steps.emplace_back();
                continue;
            }
            if (st.scratch.get_size() > s.scratchpad_.size()) s.scratchpad_ = dnnl_detail::aligned_bytes(st.scratch.get_size());
            hm.steps.push_back({dnnl::memory(st.src, eng_, DNNL_MEMORY_NONE), dnnl::memory(st.dst, eng_, DNNL_MEMORY_NONE),
                                dnnl::memory(st.scratch, eng_, DNNL_MEMORY_NONE)});
        }
        hm.prim = &chain;
        return hm;
    }

    /// A float32 map's descriptor in this model's layout (the heads' chains run in float32).
    [[nodiscard]] dnnl::memory::desc float_desc(std::size_t rows, nn::shape3 m) const {
        return {{static_cast<dnnl::memory::dim>(rows), m.c, m.h, m.w}, dnnl_detail::dt::f32, map_tag()};
    }

    /// Makes head k's chain for `rows` rows (under the head table's mutex).
    std::unique_ptr<dnnl_detail::head_primitive> make_head_chain(std::size_t k, std::size_t rows) const {
        using namespace dnnl;
        using dnnl_detail::dt;
        using dnnl_detail::head_buffer;
        using dnnl_detail::head_step;
        using dnnl_detail::tag;
        const nn::head_program& hp = head_programs_[k];
        auto chain = std::make_unique<dnnl_detail::head_primitive>();
        const auto r = static_cast<memory::dim>(rows);
        nn::shape3 m = hp.in;
        memory::desc cur = desc(rows, m);
        head_buffer at = head_buffer::map;
        bool flat = false;  // cur is rows x features (after a linear layer)
        const auto free_buffer = [&](head_buffer a, head_buffer b) {
            for (head_buffer f : {head_buffer::f0, head_buffer::f1, head_buffer::f2})
                if (f != a && f != b) return f;
            return head_buffer::f0;
        };
        // A fresh attribute per primitive (copies of a dnnl::primitive_attr share one object).
        const auto attr_with = [](nn::activation a) {
            primitive_attr attr;
            attr.set_scratchpad_mode(scratchpad_mode::user);
            post_ops po;
            dnnl_detail::append_activation(po, a);
            if (po.len() > 0) attr.set_post_ops(po);
            return attr;
        };
        const auto add = [&](dnnl::primitive prim, const auto& pd, head_buffer from, head_buffer to) -> head_step& {
            head_step& st = chain->steps.emplace_back();
            st.prim = std::move(prim);
            st.src = pd.src_desc();
            st.dst = pd.dst_desc();
            st.scratch = pd.scratchpad_desc();
            st.from = from;
            st.to = to;
            st.impl = pd.impl_info_str();
            return st;
        };
        std::size_t i = 0;
        try {
            if (opt_.precision == dnnl_precision::bf16) {  // the chain runs in float32
                const memory::desc to = float_desc(rows, m);
                const reorder::primitive_desc pd(eng_, cur, eng_, to, attr_with(nn::activation::none));
                add(reorder(pd), pd, at, head_buffer::f0);
                cur = to;
                at = head_buffer::f0;
            }
            for (; i < hp.ops.size(); ++i) {
                const nn::head_op& op = hp.ops[i];
                if (const auto* p = std::get_if<nn::pool_op>(&op)) {
                    if (flat) fail("dnnl_model: head {} pools after a linear layer", k);
                    if (p->kernel_h < 1 || p->kernel_w < 1 || p->kernel_h > m.h || p->kernel_w > m.w)
                        fail("dnnl_model: head {} pools {}x{} windows of a {}x{} map", k, p->kernel_h, p->kernel_w, m.h, m.w);
                    const nn::shape3 out{m.c, m.h / p->kernel_h, m.w / p->kernel_w};
                    const memory::desc dst = float_desc(rows, out);
                    const memory::dims kernel{p->kernel_h, p->kernel_w};
                    const auto pool = [&](algorithm alg, head_buffer to) {
                        const pooling_forward::desc d(prop_kind::forward_inference, alg, cur, dst, kernel, kernel, {0, 0}, {0, 0});
                        const pooling_forward::primitive_desc pd(d, attr_with(nn::activation::none), eng_);
                        add(pooling_forward(pd), pd, at, to);
                    };
                    const head_buffer to = free_buffer(at, at);
                    pool(algorithm::pooling_avg_exclude_padding, to);
                    if (p->max_weight) {
                        const head_buffer top = free_buffer(at, to);
                        pool(algorithm::pooling_max, top);
                        head_step& mix = chain->steps.emplace_back();
                        mix.what = head_step::kind::mix;
                        mix.from = top;
                        mix.to = to;
                        mix.weight = *p->max_weight;
                        mix.floats = dst.get_size() / sizeof(float);
                        mix.impl = "mix";
                    }
                    cur = dst;
                    at = to;
                    m = out;
                } else if (const auto* c = std::get_if<nn::conv_op>(&op)) {
                    if (flat) fail("dnnl_model: head {} has a convolution after a linear layer", k);
                    const nn::conv2d& conv = *c->conv;
                    const nn::shape3 out = conv.output_shape(m);
                    const memory::dim kk = conv.kernel(), st = conv.stride(), pad = conv.padding();
                    const bool dw = conv.depthwise();
                    const memory::dims wdims = dw ? memory::dims{out.c, 1, 1, kk, kk} : memory::dims{out.c, m.c, kk, kk};
                    const memory::desc bias_md({out.c}, dt::f32, tag::a), dst = float_desc(rows, out);
                    const convolution_forward::desc d(prop_kind::forward_inference, algorithm::convolution_direct, cur,
                                                      memory::desc(wdims, dt::f32, tag::any), bias_md, dst, {st, st},
                                                      {pad, pad}, {pad, pad});
                    const convolution_forward::primitive_desc pd(d, attr_with(conv.act()), eng_);
                    head_step& s = add(convolution_forward(pd), pd, at, free_buffer(at, at));
                    s.weights = head_table_->weights_in(pd.weights_desc(), memory::desc(wdims, dt::f32, dw ? tag::goihw : tag::oihw),
                                                        conv.weight().data(), eng_);
                    s.bias = memory(bias_md, eng_, const_cast<float*>(conv.bias().data()));
                    cur = dst;
                    at = s.to;
                    m = out;
                } else {
                    const nn::linear_op& l = std::get<nn::linear_op>(op);
                    const auto in = static_cast<std::size_t>(flat ? m.c : m.size());
                    if (!flat && m.h == 1 && m.w == 1 && (m.c % static_cast<int>(block_) == 0 || opt_.layout == dnnl_layout::nhwc)) {
                        // A 1x1 map (after global pooling) is laid out as rows x channels: read it
                        // as a matrix, which oneDNN multiplies faster (brgemm) than a 4-D source.
                        cur = memory::desc({r, m.c}, dt::f32, tag::nc);
                        flat = true;
                    }
                    if (l.linear->input_size() != in)
                        fail("dnnl_model: head {} has a linear layer of {} inputs after {} features", k,
                             l.linear->input_size(), in);
                    const auto o = static_cast<memory::dim>(l.linear->num_classes());
                    const memory::dims wdims = flat ? memory::dims{o, m.c} : memory::dims{o, m.c, m.h, m.w};
                    const memory::desc bias_md({o}, dt::f32, tag::a), dst({r, o}, dt::f32, tag::nc);
                    const inner_product_forward::desc d(prop_kind::forward_inference, cur,
                                                        memory::desc(wdims, dt::f32, tag::any), bias_md, dst);
                    const inner_product_forward::primitive_desc pd(d, attr_with(l.act), eng_);
                    const bool last = i + 1 == hp.ops.size();
                    head_step& s = add(inner_product_forward(pd), pd, at, last ? head_buffer::logits : free_buffer(at, at));
                    s.weights = head_table_->weights_in(pd.weights_desc(), memory::desc(wdims, dt::f32, flat ? tag::oi : tag::oihw),
                                                        l.linear->weight().data(), eng_);
                    s.bias = memory(bias_md, eng_, const_cast<float*>(l.linear->bias().data()));
                    cur = dst;
                    at = s.to;
                    m = {static_cast<int>(o), 1, 1};
                    flat = true;
                }
            }
        } catch (const dnnl::error& err) {
            fail("dnnl_model: head {} operation {} ({}x{}x{} in, {} rows, {}, {}): oneDNN: {}", k, i, m.c, m.h, m.w, rows,
                 to_string(opt_.precision), layout_name(), err.what());
        }
        if (hp.ops.empty() || !std::holds_alternative<nn::linear_op>(hp.ops.back()))
            fail("dnnl_model: head {}'s program does not end in a linear layer (its logits)", k);
        return chain;
    }

    [[nodiscard]] std::size_t elem() const noexcept { return opt_.precision == dnnl_precision::bf16 ? 2 : 4; }
    [[nodiscard]] dnnl_detail::dt data_type() const noexcept {
        return opt_.precision == dnnl_precision::bf16 ? dnnl_detail::dt::bf16 : dnnl_detail::dt::f32;
    }
    /// The format of the maps after the input: NHWC, or the blocked layout of this CPU's block.
    [[nodiscard]] dnnl_detail::tag map_tag() const noexcept {
        using dnnl_detail::tag;
        return opt_.layout == dnnl_layout::nhwc ? tag::nhwc : block_ == 16 ? tag::nChw16c : tag::nChw8c;
    }
    /// The memory descriptor of `rows` rows of maps of shape m (the input: NCHW).
    [[nodiscard]] dnnl::memory::desc desc(std::size_t rows, nn::shape3 m) const {
        using dnnl_detail::tag;
        const tag t = opt_.layout == dnnl_layout::blocked && m == input_ ? tag::nchw : map_tag();
        return {{static_cast<dnnl::memory::dim>(rows), m.c, m.h, m.w}, data_type(), t};
    }

    /// The primitive of convolution l for `rows` rows, created on first use (thread-safe).
    const dnnl_detail::conv_primitive& primitive(std::size_t l, std::size_t rows) const {
        EARLYEXIT_ASSERT(rows >= 1 && rows <= capacity_);
        return table_->get(l, rows, [&] { return make_primitive(l, rows); });
    }

    /// s's memory objects for convolution l at `rows` rows, created on first use; the state's
    /// scratchpad grows to what the primitive needs.
    const dnnl_detail::conv_memory& memory_for(dnnl_batch_state& s, std::size_t l, std::size_t rows) const {
        auto& m = s.memories_[l * (s.capacity() + 1) + rows];
        if (m.prim) return m;
        const auto& p = primitive(l, rows);
        m.src = dnnl::memory(p.pd.src_desc(), eng_, DNNL_MEMORY_NONE);
        m.dst = dnnl::memory(p.pd.dst_desc(), eng_, DNNL_MEMORY_NONE);
        if (p.add_arg != 0) m.add = dnnl::memory(p.pd.dst_desc(), eng_, DNNL_MEMORY_NONE);
        const dnnl::memory::desc sp = p.pd.scratchpad_desc();
        if (sp.get_size() > s.scratchpad_.size()) s.scratchpad_ = dnnl_detail::aligned_bytes(sp.get_size());
        m.scratch = dnnl::memory(sp, eng_, DNNL_MEMORY_NONE);
        m.prim = &p;
        return m;
    }

    /// Makes convolution l's primitive for `rows` rows (under the table's mutex).
    std::unique_ptr<dnnl_detail::conv_primitive> make_primitive(std::size_t l, std::size_t rows) const {
        using namespace dnnl;
        using dnnl_detail::dt;
        using dnnl_detail::tag;
        const nn::conv_step& c = steps_[l];
        const nn::conv2d& conv = *c.conv;
        const nn::shape3 out = conv.output_shape(c.in);
        const memory::dim k = conv.kernel(), st = conv.stride(), pad = conv.padding();
        const bool dw = conv.depthwise();
        const memory::dims wdims = dw ? memory::dims{out.c, 1, 1, k, k} : memory::dims{out.c, c.in.c, k, k};
        const memory::desc plain_w(wdims, dt::f32, dw ? tag::goihw : tag::oihw);
        const memory::desc any_w(wdims, data_type(), tag::any);
        const memory::desc bias_md({out.c}, dt::f32, tag::a);
        const memory::desc src_md = desc(rows, c.in), dst_md = desc(rows, out);
        // The residual as a binary post-op (read from its buffer), or as a sum post-op into the
        // destination, where the caller has copied it first.
        int add_index = -1;
        const auto attr_for = [&](bool by_copy) {
            post_ops po;
            dnnl_detail::append_activation(po, conv.act());
            if (c.add) {
                add_index = po.len();
                if (by_copy)
                    po.append_sum(1.f);
                else
                    po.append_binary(algorithm::binary_add, dst_md);
            }
            dnnl_detail::append_activation(po, c.after_add);
            primitive_attr attr;
            attr.set_post_ops(po);
            attr.set_scratchpad_mode(scratchpad_mode::user);
            return attr;
        };
        const bool wino = opt_.allow_winograd && opt_.precision == dnnl_precision::f32 && opt_.layout == dnnl_layout::blocked;
        const algorithm alg = wino ? algorithm::convolution_auto : algorithm::convolution_direct;
        auto p = std::make_unique<dnnl_detail::conv_primitive>();
        try {
            const convolution_forward::desc d(prop_kind::forward_inference, alg, src_md, any_w, bias_md, dst_md, {st, st},
                                              {pad, pad}, {pad, pad});
            // oneDNN's Winograd takes a sum post-op but not a binary one: a residual 3x3 layer
            // runs on Winograd (measured 1.2-2x faster at 32-192 channels) when the copy of the
            // residual buys it; otherwise the binary post-op, with no copy.
            if (c.add && wino) {
                convolution_forward::primitive_desc pd(d, attr_for(true), eng_);
                if (std::string_view(pd.impl_info_str()).find("wino") != std::string_view::npos) {
                    p->pd = pd;
                    p->add_by_copy = true;
                    p->dst_bytes = dst_md.get_size();
                }
            }
            if (!p->add_by_copy) p->pd = convolution_forward::primitive_desc(d, attr_for(false), eng_);
            p->prim = convolution_forward(p->pd);
            p->impl = p->pd.impl_info_str();
            p->weights = table_->weights_in(p->pd.weights_desc(), plain_w, conv.weight().data(), eng_);
            p->bias = memory(bias_md, eng_, const_cast<float*>(conv.bias().data()));
        } catch (const dnnl::error& err) {
            fail("dnnl_model: convolution {} ({}x{}x{} -> {}x{}x{}, kernel {}, stride {}, {} rows, {}, {}): oneDNN: {}", l,
                 c.in.c, c.in.h, c.in.w, out.c, out.h, out.w, k, st, rows, to_string(opt_.precision),
                 layout_name(), err.what());
        }
        if (c.add && !p->add_by_copy) p->add_arg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(add_index) | DNNL_ARG_SRC_1;
        return p;
    }

    /// One convolution: sets the data handles (no allocation) and executes through the C API
    /// with the arguments on the stack.
    static void run(const dnnl_detail::conv_memory& m, dnnl_batch_state& s, const std::byte* src, std::byte* dst,
                    const std::byte* add) noexcept {
        const dnnl_detail::conv_primitive& p = *m.prim;
        dnnl_memory_set_data_handle(m.src.get(), const_cast<std::byte*>(src));
        dnnl_memory_set_data_handle(m.dst.get(), dst);
        dnnl_memory_set_data_handle(m.scratch.get(), s.scratchpad_.data());
        std::array<dnnl_exec_arg_t, 6> args{{{DNNL_ARG_SRC, m.src.get()},
                                             {DNNL_ARG_WEIGHTS, p.weights.get()},
                                             {DNNL_ARG_BIAS, p.bias.get()},
                                             {DNNL_ARG_DST, m.dst.get()},
                                             {DNNL_ARG_SCRATCHPAD, m.scratch.get()},
                                             {}}};
        int n = 5;
        if (add && p.add_by_copy) {
            std::memcpy(dst, add, p.dst_bytes);
        } else if (add) {
            dnnl_memory_set_data_handle(m.add.get(), const_cast<std::byte*>(add));
            args[5] = {p.add_arg, m.add.get()};
            n = 6;
        }
        dnnl_detail::execute(p.prim, s.stream_, n, args.data());
    }

    dynamic_network<feature_state> net_;
    std::size_t capacity_;
    dnnl_options opt_;
    nn::shape3 input_;
    bool holds_;
    std::size_t block_ = dnnl_detail::block_channels();  // channels per block of the blocked layout
    dnnl::engine eng_;
    std::vector<std::shared_ptr<const Stage>> keep_;  // the layers the programs point into
    std::vector<nn::stage_program> programs_;
    std::vector<nn::conv_step> steps_;  // every convolution, in stage order (pointing into keep_)
    std::vector<std::size_t> first_step_;     // stage p's convolutions: [first_step_[p], first_step_[p + 1])
    std::vector<std::size_t> out_row_bytes_;  // stage p's output: bytes per row
    std::vector<std::shared_ptr<const Head>> heads_;
    std::size_t row_bytes_ = 0, head_ws_ = 0, head_map_ = 0;
    std::shared_ptr<dnnl_detail::primitive_table> table_;  // shared by copies of the model
    // The heads on oneDNN (empty: the Eigen heads): programs, the largest float32 row of their
    // chains, the chains.
    std::vector<nn::head_program> head_programs_;
    std::size_t head_row_bytes_ = 0;
    std::shared_ptr<dnnl_detail::head_table> head_table_;
};

}  // namespace earlyexit::demo
