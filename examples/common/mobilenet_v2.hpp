#pragma once
// MobileNetV2 (torchvision, ImageNet) with exit heads, run with Eigen: the networks of
// examples/train/imagenet_exits.py (1000 classes with distilled exits, or 10 Imagenette classes).
//
// The weight file (safetensors) carries the architecture in its metadata ("architecture": the
// stages and the heads, as JSON; read and checked by staged_model.hpp) and these tensors:
//
//   stem.*                         conv 3x3 stride 2 + ReLU6
//   blocks.<i>.expand.*            conv 1x1 + ReLU6 (absent when the expand ratio is 1)
//   blocks.<i>.depthwise.*         depthwise conv 3x3 (stride 1 or 2) + ReLU6
//   blocks.<i>.project.*           conv 1x1, no activation; + the block input when "residual"
//   last_conv.*                    conv 1x1 to 1280 + ReLU6
//   classifier.*                   the final exit: global average pool + linear
//   heads.<k>.conv.*, .fc.*        exit k ("exit_head"): [avg pool k x k] -> [conv 1x1 + ReLU6]
//                                  -> global average pool -> linear; then either ReLU6 and the
//                                  backbone's classifier, shared (the linear predicts its 1280
//                                  inputs), or nothing (the linear gives the logits)
//
// Backbone weights are int8 with float32 scales ("<name>.weight_scale", per tensor or per output
// channel; optional int32 "<name>.weight_zero_point"): w = (q - zp) * scale, computed in float32
// as torchvision's dequantize() does, so the float network is exactly the float32 model.
// Biases and the heads are float32. Stage 0 is the stem, stage i+1 is block i, the last stage
// is last_conv; each stage is one callable of an earlyexit::dynamic_network over feature_state,
// and batched_model runs them on a batch_feature_state (run_batch), many samples at once.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <earlyexit/earlyexit.hpp>
#include <nlohmann/json.hpp>

#include "batch_feature_state.hpp"
#include "batched_model.hpp"
#include "feature_state.hpp"
#include "image.hpp"
#include "nn.hpp"
#include "preprocess.hpp"
#include "safetensors.hpp"
#include "stage_program.hpp"
#include "staged_model.hpp"

namespace earlyexit::demo {

namespace detail {

/// A mobilenet_v2 stage: stem / last_conv (one conv) or an inverted-residual block.
struct mobilenet_stage {
    std::optional<nn::conv2d> expand;
    nn::conv2d main;  // stem / last_conv conv, or the block's depthwise conv
    std::optional<nn::conv2d> project;
    bool residual = false;
    nn::shape3 in, hidden, mid, out;

    void operator()(feature_state& s) const noexcept {
        const float* x = s.data();
        float* y = s.next();
        if (!project) {
            main(x, in, y, s.ws);
        } else {
            const float* e = x;
            if (expand) {
                (*expand)(x, in, s.scratch(0), s.ws);
                e = s.scratch(0);
            }
            main(e, hidden, s.scratch(1), s.ws);
            (*project)(s.scratch(1), mid, y, s.ws);
            if (residual) nn::add_act(y, x, y, out.size(), nn::activation::none);
        }
        s.advance(out);
    }

    /// The same on rows 0..rows-1 of a batch, a group of rows at a time through the whole
    /// block (nn::batch_group_rows of its output positions: one row at 28x28 and above, 20 at
    /// 7x7), so that its expanded maps stay in cache as one sample's do, while the 1x1 convs of
    /// the small late maps become GEMMs over many rows (conv2d::run_batch).
    void run_batch(batch_feature_state& s, std::size_t rows) const noexcept {
        const float* x = s.data();
        float* y = s.next();
        const std::size_t g = nn::batch_group_rows(out.positions(), rows);
        for (std::size_t r0 = 0; r0 < rows; r0 += g) {
            const nn::batch_extent e{std::min(g, rows - r0), s.capacity()};
            const float* xg = x + r0 * in.positions();
            float* yg = y + r0 * out.positions();
            if (!project) {
                main.run_batch(xg, in, e, yg, s.ws);
                continue;
            }
            const float* ex = xg;
            if (expand) {
                float* eg = s.scratch(0) + r0 * hidden.positions();
                expand->run_batch(xg, in, e, eg, s.ws);
                ex = eg;
            }
            float* dg = s.scratch(1) + r0 * mid.positions();
            main.run_batch(ex, hidden, e, dg, s.ws);
            project->run_batch(dg, mid, e, yg, s.ws);
            if (residual) nn::batch_add_act(yg, xg, yg, out, e, nn::activation::none);
        }
        s.advance(out);
    }
    /// The stage as convolutions between a state's buffers (stage_program.hpp), for another
    /// backend: expand, depthwise and project as operator() runs them, the residual as a sum.
    [[nodiscard]] nn::stage_program program() const {
        using nn::slot;
        nn::stage_program p{.steps = {}, .out = out};
        if (!project) {
            p.steps.push_back(nn::step(main, in, slot::current, slot::next));
            return p;
        }
        slot e = slot::current;
        if (expand) {
            p.steps.push_back(nn::step(*expand, in, slot::current, slot::scratch0));
            e = slot::scratch0;
        }
        p.steps.push_back(nn::step(main, hidden, e, slot::scratch1));
        p.steps.push_back(nn::step(*project, mid, slot::scratch1, slot::next,
                                   residual ? std::optional<slot>(slot::current) : std::nullopt));
        return p;
    }

    /// Workspace floats run_batch needs for `rows` rows.
    [[nodiscard]] std::size_t batch_workspace_size(std::size_t rows) const {
        if (!project) return main.batch_workspace_size(in, rows);
        return std::max({expand ? expand->batch_workspace_size(in, rows) : 0, main.batch_workspace_size(hidden, rows),
                         project->batch_workspace_size(mid, rows)});
    }
};

/// A mobilenet_v2 exit: [average pool] -> [1x1 conv + ReLU6] -> global average pool -> fc,
/// then, for an "exit_head" that ends in the backbone's classifier, ReLU6 and that classifier
/// (shared); without it the fc gives the logits.
struct mobilenet_head {
    int pool = 1;
    std::optional<nn::conv2d> conv;
    std::optional<linear_head<float>> fc;
    std::shared_ptr<const linear_head<float>> classifier;  // null: fc gives the logits
    nn::shape3 in;
    double declared_macs = 0;
    std::size_t workspace = 0;

    [[nodiscard]] std::size_t num_classes() const noexcept { return classifier ? classifier->num_classes() : fc->num_classes(); }
    [[nodiscard]] double macs() const noexcept { return declared_macs; }
    [[nodiscard]] std::size_t workspace_size() const noexcept { return workspace; }

    void operator()(const feature_state& s, std::span<float> logits, std::span<float> ws) const noexcept {
        const float* x = s.data();
        nn::shape3 shape = s.shape;
        if (pool > 1) {
            shape = nn::avg_pool(x, shape, pool, ws.data());
            x = ws.data();
            ws = ws.subspan(shape.size());
        }
        if (conv) {
            (*conv)(x, shape, ws.data(), {});
            shape = {conv->out_channels(), shape.h, shape.w};
            x = ws.data();
            ws = ws.subspan(shape.size());
        }
        Eigen::Map<Eigen::VectorXf> pooled(ws.data(), shape.c);
        pooled.noalias() = nn::pooled(x, shape).rowwise().mean();
        if (!classifier) {
            (*fc)(pooled, logits);
            return;
        }
        const std::span<float> z = ws.subspan(static_cast<std::size_t>(shape.c), fc->num_classes());
        (*fc)(pooled, z);
        nn::apply(nn::activation::relu6, z.data(), z.size());
        (*classifier)(Eigen::Map<const Eigen::VectorXf>(z.data(), static_cast<Eigen::Index>(z.size())), logits);
    }

    /// The head as operations (stage_program.hpp), for another backend: the same layers as
    /// operator(), the global average pooling as one window over the whole map.
    [[nodiscard]] nn::head_program program() const {
        nn::head_program p{.in = in, .ops = {}};
        nn::shape3 m = in;
        if (pool > 1) {
            p.ops.emplace_back(nn::pool_op{.kernel_h = pool, .kernel_w = pool, .max_weight = std::nullopt});
            m = {m.c, m.h / pool, m.w / pool};
        }
        if (conv) p.ops.emplace_back(nn::conv_op{.conv = &*conv});
        p.ops.emplace_back(nn::pool_op{.kernel_h = m.h, .kernel_w = m.w, .max_weight = std::nullopt});
        p.ops.emplace_back(nn::linear_op{.linear = &*fc, .act = classifier ? nn::activation::relu6 : nn::activation::none});
        if (classifier) p.ops.emplace_back(nn::linear_op{.linear = classifier.get()});
        return p;
    }

    /// Scratch floats of run_batch for up to `capacity` rows: the gathered maps, the
    /// per-sample workspace and the logits (transposed) of every row.
    [[nodiscard]] std::size_t batch_workspace_size(std::size_t capacity) const noexcept {
        return capacity * (in.size() + workspace + num_classes());
    }

    /// The head on the listed rows of a batch at once: the listed maps gathered into a dense
    /// batch (unless they are rows 0..m-1 already), the 1x1 conv as one GEMM over them, the
    /// pooled features of all of them as a C x m matrix through fc and the classifier as
    /// GEMMs. Logits row j is row list[j]'s.
    void run_batch(const batch_feature_state& s, std::span<const std::size_t> list, std::span<float> logits,
                   std::span<float> ws) const noexcept {
        const std::size_t m = list.size();
        if (m == 0) return;
        nn::shape3 shape = s.shape;
        const float* x = s.data();
        nn::batch_extent e = s.extent(m);
        if (list.back() + 1 != m) {  // increasing and not 0..m-1: gather them
            nn::batch_gather(x, shape, s.capacity(), list, ws.data());
            x = ws.data();
            e = {m, m};
            ws = ws.subspan(m * shape.size());
        }
        if (pool > 1) {
            // avg_pool treats its input as planes: the rows' channel planes, when they are dense.
            if (e.capacity != m) {
                nn::batch_gather(x, shape, e.capacity, list, ws.data());  // list is 0..m-1 here
                x = ws.data();
                ws = ws.subspan(m * shape.size());
            }
            const nn::shape3 p = nn::avg_pool(x, {static_cast<int>(static_cast<std::size_t>(shape.c) * m), shape.h, shape.w},
                                              pool, ws.data());
            shape = {shape.c, p.h, p.w};
            x = ws.data();
            e = {m, m};
            ws = ws.subspan(m * shape.size());
        }
        if (conv) {  // its output in the layout of its input
            conv->run_batch(x, shape, e, ws.data(), {});
            shape = {conv->out_channels(), shape.h, shape.w};
            x = ws.data();
            ws = ws.subspan(e.capacity * shape.size());
        }
        // Global average pooling: column j of the C x m matrix is row j's features. Every
        // matrix here is row-major, as the weights are: products of that one layout only.
        const auto c = static_cast<Eigen::Index>(shape.c), rows = static_cast<Eigen::Index>(m);
        nn::mmap pooled(ws.data(), c, rows);
        for (Eigen::Index ch = 0; ch < c; ++ch)
            for (Eigen::Index j = 0; j < rows; ++j)
                pooled(ch, j) = nn::batch_row(x, shape, e.capacity, static_cast<std::size_t>(j)).row(ch).mean();
        ws = ws.subspan(m * static_cast<std::size_t>(shape.c));
        const auto classes = static_cast<Eigen::Index>(num_classes());
        nn::mmap out(ws.data(), classes, rows);  // column j: row j's logits
        if (!classifier) {
            nn::product_by_row_panels(out, fc->weight(), pooled);
        } else {
            nn::mmap z(ws.data() + m * num_classes(), static_cast<Eigen::Index>(fc->num_classes()), rows);
            nn::product_by_row_panels(z, fc->weight(), pooled);
            z.colwise() += fc->bias();
            nn::apply(nn::activation::relu6, z.data(), static_cast<std::size_t>(z.size()));
            nn::product_by_row_panels(out, classifier->weight(), z);
        }
        // logits is m x classes, row-major: out transposed, plus the bias.
        const auto& bias = classifier ? classifier->bias() : fc->bias();
        Eigen::Map<nn::rmatrix>(logits.data(), rows, classes) = out.transpose();
        Eigen::Map<nn::rmatrix>(logits.data(), rows, classes).rowwise() += bias.transpose();
    }
};

}  // namespace detail

class mobilenet_v2 : public staged_model<detail::mobilenet_stage, detail::mobilenet_head> {
public:
    static constexpr std::string_view format_name = "earlyexit-imagenet-mobilenet-v2";

    /// Loads and validates the weight file; throws earlyexit::error naming the problem.
    explicit mobilenet_v2(const std::filesystem::path& weights) : mobilenet_v2(safetensors_file(weights)) {}

    [[nodiscard]] const imagenet_eval_transform& transform() const noexcept { return transform_; }

    /// Preprocesses an RGB image of any size as torchvision does (resize, center crop, normalize)
    /// into the state's input. Allocates (the resized image), outside the timed inference.
    void set_input(feature_state& s, const image_u8& image) const {
        transform_(image, std::span<float>(s.input(), input_shape().size()));
        s.begin(input_shape());
    }

    /// The same from a square that transform().resize_and_crop() made: only the normalization
    /// is left (allocates nothing; a square of another size throws).
    void set_cropped_input(feature_state& s, const image_u8& square) const {
        transform_.normalize(square, std::span<float>(s.input(), input_shape().size()));
        s.begin(input_shape());
    }

    /// set_input and set_cropped_input into row r of a batch (r < s.capacity()); once its rows
    /// are written, s.begin(input_shape(), rows) starts the batch. Any batch state with
    /// input_row(r) (a CHW float map): batch_feature_state, dnnl_batch_state.
    template <class BatchState>
    void set_input_row(BatchState& s, std::size_t r, const image_u8& image) const {
        transform_(image, std::span<float>(s.input_row(r), input_shape().size()));
    }
    template <class BatchState>
    void set_cropped_input_row(BatchState& s, std::size_t r, const image_u8& square) const {
        transform_.normalize(square, std::span<float>(s.input_row(r), input_shape().size()));
    }

private:
    explicit mobilenet_v2(const safetensors_file& f)
        : staged_model(f, format_name, &load_stage, head_loader{}), transform_(read_transform(f, *this)) {}

    /// torchvision's eval preprocessing as the file describes it: the input must be [3, S, S],
    /// "preprocessing" gives the resize and a center crop of S.
    static imagenet_eval_transform read_transform(const safetensors_file& f, const staged_model& m) {
        const nn::shape3 in = m.input_shape();
        if (in.h != in.w) earlyexit::fail("{}: input shape [{}, {}, {}] is not [3, S, S]", f.path(), in.c, in.h, in.w);
        imagenet_eval_transform t;
        t.crop = in.h;
        t.mean = m.mean();
        t.stddev = m.stddev();
        try {
            const auto pre = f.metadata_json("preprocessing");
            t.resize = pre.at("resize_shorter").get<int>();
            if (pre.at("center_crop").get<int>() != t.crop)
                earlyexit::fail("{}: center_crop {} differs from the input size {}", f.path(), pre.at("center_crop").dump(),
                                t.crop);
        } catch (const nlohmann::json::exception& e) {
            earlyexit::fail("{}: bad metadata: {}", f.path(), e.what());
        }
        return t;
    }

    /// Dequantized weight of `name` as out x (in/groups*k*k); F32 weights are read as they are.
    static nn::rmatrix weight(const safetensors_file& f, const std::string& name, std::span<const std::size_t> shape) {
        const auto rows = static_cast<Eigen::Index>(shape[0]);
        std::size_t cols = 1;
        for (std::size_t d = 1; d < shape.size(); ++d) cols *= shape[d];
        nn::rmatrix w(rows, static_cast<Eigen::Index>(cols));
        if (f.tensor(name + ".weight").dtype == st_dtype::f32) {
            const auto v = f.floats(name + ".weight", shape);
            std::memcpy(w.data(), v.data(), v.size() * sizeof(float));
            return w;
        }
        const auto q = f.int8s(name + ".weight", shape);
        const st_tensor& st = f.tensor(name + ".weight_scale");
        if (st.shape.size() != 1 || (st.shape[0] != 1 && st.shape[0] != shape[0]))
            earlyexit::fail("{}: '{}.weight_scale' has shape [{}], expected [1] or [{}]", f.path(), name, fmt::join(st.shape, ", "),
                         shape[0]);
        const auto scale = f.floats(name + ".weight_scale", st.shape);
        std::vector<std::int32_t> zp(scale.size(), 0);
        if (f.contains(name + ".weight_zero_point")) {
            const st_tensor& z = f.tensor(name + ".weight_zero_point");
            f.check_shape(name + ".weight_zero_point", z, st.shape);
            if (z.dtype != st_dtype::i32)
                earlyexit::fail("{}: '{}.weight_zero_point' has dtype {}, expected I32", f.path(), name, dtype_name(z.dtype));
            std::memcpy(zp.data(), z.bytes.data(), z.bytes.size());
        }
        for (Eigen::Index r = 0; r < rows; ++r) {
            const std::size_t c = scale.size() == 1 ? 0 : static_cast<std::size_t>(r);
            for (std::size_t j = 0; j < cols; ++j)
                w(r, static_cast<Eigen::Index>(j)) =
                    (static_cast<float>(q[static_cast<std::size_t>(r) * cols + j]) - static_cast<float>(zp[c])) * scale[c];
        }
        return w;
    }

    static nn::conv2d conv(const safetensors_file& f, const std::string& name, int cin, int cout, int k, int stride, bool depthwise,
                           nn::activation act) {
        const std::size_t shape[] = {std::size_t(cout), std::size_t(depthwise ? 1 : cin), std::size_t(k), std::size_t(k)};
        const auto b = f.floats(name + ".bias", {std::size_t(cout)});
        return nn::conv2d(weight(f, name, shape), Eigen::Map<const Eigen::VectorXf>(b.data(), cout), cin, k, stride, k / 2,
                          depthwise ? cin : 1, act);
    }

    /// One stage of the architecture metadata: "conv_relu6" (stem, last_conv) or "inverted_residual".
    static stage_part<detail::mobilenet_stage> load_stage(const safetensors_file& f, const nlohmann::json& js,
                                                          const stage_site& site) {
        const std::string& name = site.name;
        const nn::shape3 shape = site.in;
        const auto type = js.at("type").get<std::string>();
        const int cin = js.at("in_channels").get<int>(), cout = js.at("out_channels").get<int>();
        const int stride = js.at("stride").get<int>();
        detail::mobilenet_stage st;
        st.in = shape;
        std::size_t buffers = 0, ws = 0;
        double macs = 0;
        if (type == "conv_relu6") {
            st.main = conv(f, name, cin, cout, js.at("kernel").get<int>(), stride, false, nn::activation::relu6);
            st.out = st.main.output_shape(shape);
            ws = st.main.workspace_size(shape);
            macs = st.main.macs(shape);
        } else if (type == "inverted_residual") {
            const int hidden = js.at("hidden_channels").get<int>();
            if (js.at("expand_ratio").get<int>() != 1) {
                st.expand = conv(f, name + ".expand", cin, hidden, 1, 1, false, nn::activation::relu6);
                st.hidden = st.expand->output_shape(shape);
            } else {
                st.hidden = shape;
            }
            st.main = conv(f, name + ".depthwise", hidden, hidden, 3, stride, true, nn::activation::relu6);
            st.mid = st.main.output_shape(st.hidden);
            st.project = conv(f, name + ".project", hidden, cout, 1, 1, false, nn::activation::none);
            st.out = st.project->output_shape(st.mid);
            st.residual = js.at("residual").get<bool>();
            if (st.residual && st.out != shape) earlyexit::fail("{}: stage '{}' is residual but changes the shape", f.path(), name);
            macs = (st.expand ? st.expand->macs(shape) : 0.0) + st.main.macs(st.hidden) + st.project->macs(st.mid);
            buffers = std::max(st.hidden.size(), st.mid.size());
        } else {
            earlyexit::fail("{}: stage '{}' has unknown type '{}'", f.path(), name, type);
        }
        const nn::shape3 out = st.out;
        return {std::move(st), out, macs, buffers, ws};
    }

    /// Linear layer `name` (weight [out, in], int8 or float, and bias [out]).
    static linear_head<float> linear(const safetensors_file& f, const std::string& name, std::size_t out, std::size_t in) {
        const std::size_t shape[] = {out, in};
        const auto b = f.floats(name + ".bias", {out});
        return linear_head<float>(weight(f, name, shape), Eigen::Map<const Eigen::VectorXf>(b.data(), static_cast<Eigen::Index>(out)));
    }

    /// Loads the heads of the architecture metadata: "exit_head" (exits, distilled or fitted) and
    /// "gap_linear" (the backbone's classifier, read once and shared by the exits that end in it).
    struct head_loader {
        std::shared_ptr<const linear_head<float>> classifier;

        detail::mobilenet_head operator()(const safetensors_file& f, const nlohmann::json& jh, const head_site& site) {
            const std::string& name = site.name;
            const auto type = jh.at("type").get<std::string>();
            if (!classifier)
                classifier = std::make_shared<const linear_head<float>>(linear(f, "classifier", site.classes, std::size_t(site.last.c)));
            detail::mobilenet_head h;
            h.in = site.in;
            nn::shape3 shape = h.in;
            double macs = 0;
            if (type == "gap_linear") {
                if (name != "classifier")
                    earlyexit::fail("{}: head '{}': gap_linear is only the final classifier here", f.path(), name);
                h.fc = *classifier;
            } else if (type == "exit_head") {
                h.pool = jh.at("pool").get<int>();
                if (h.pool < 1 || shape.h % h.pool != 0 || shape.w % h.pool != 0)
                    earlyexit::fail("{}: head '{}': pool {} does not divide {}x{}", f.path(), name, h.pool, shape.h, shape.w);
                if (h.pool > 1) {
                    macs += static_cast<double>(shape.size());
                    shape = {shape.c, shape.h / h.pool, shape.w / h.pool};
                    h.workspace += shape.size();
                }
                if (jh.at("conv").get<bool>()) {
                    const int out = jh.at("conv_out").get<int>();
                    h.conv = conv(f, name + ".conv", shape.c, out, 1, 1, false, nn::activation::relu6);
                    macs += h.conv->macs(shape);
                    shape = {out, shape.h, shape.w};
                    h.workspace += shape.size();
                }
                // "classifier": "classifier" ends the head in the backbone's classifier (fc then
                // predicts its 1280 inputs); null or absent: fc gives the logits itself.
                const auto fc_out = jh.at("fc_out").get<std::size_t>();
                const auto cls = jh.find("classifier");
                const bool shared = cls != jh.end() && !cls->is_null();
                if (shared && *cls != "classifier")
                    earlyexit::fail("{}: head '{}': classifier {} is not \"classifier\" (the backbone's) or null", f.path(), name,
                                    cls->dump());
                if (shared && fc_out != static_cast<std::size_t>(site.last.c))
                    earlyexit::fail("{}: head '{}': fc_out {} differs from the classifier's {} inputs", f.path(), name, fc_out,
                                    site.last.c);
                if (!shared && fc_out != site.classes)
                    earlyexit::fail("{}: head '{}': fc_out {} differs from the {} classes (a head without the shared "
                                    "classifier gives the logits)",
                                    f.path(), name, fc_out, site.classes);
                h.fc = linear(f, name + ".fc", fc_out, std::size_t(shape.c));
                macs += static_cast<double>(fc_out) * static_cast<double>(shape.c);
                if (shared) {
                    h.classifier = classifier;
                    h.workspace += fc_out;
                    macs += static_cast<double>(site.classes) * static_cast<double>(fc_out);
                }
            } else {
                earlyexit::fail("{}: head '{}' has unknown type '{}'", f.path(), name, type);
            }
            // The file's convention: conv and linear multiply-accumulates plus the pooling
            // additions (no bias, no activation).
            macs += static_cast<double>(shape.size());  // global average pool
            if (type == "gap_linear") macs += static_cast<double>(site.classes) * static_cast<double>(shape.c);
            h.workspace += static_cast<std::size_t>(shape.c);
            h.declared_macs = macs;
            if (const double declared = jh.at("macs").get<double>(); declared != h.declared_macs)
                earlyexit::fail("{}: head '{}' declares {} MACs, its layers have {}", f.path(), name, declared, h.declared_macs);
            return h;
        }
    };

    imagenet_eval_transform transform_{};
};

/// The batched network of a mobilenet_v2: batched_model(model).
using batched_mobilenet_v2 = batched_model<detail::mobilenet_stage, detail::mobilenet_head>;
static_assert(earlyexit::batched_network<batched_mobilenet_v2>);

}  // namespace earlyexit::demo
