// bench_onednn: the training step of bench_lstm done with oneDNN's LSTM primitive, the
// strongest CPU peer: a hand-fused forward (training mode, with workspace) and backward.
//
// A step, as bench_lstm's: LSTM over (B, T, I) from zero states, the last step's h ->
// Dense(1) -> MSE against a target, backward (lstm_backward), SGD on every weight. The
// LSTM's weights stay in the layouts oneDNN chose for the primitives; the Dense layer, the
// loss and SGD are plain loops (a few hundred flops). Prints one JSON line in bench_lstm's
// format with "impl":"onednn".
//
//   bench_onednn --config tiny|small|medium|large --threads N --steps N [--dump PATH]
//
// --dump PATH writes one step's inputs, weights (Keras layout) and gradients as JSON, for
// bench/check_onednn.py, which recomputes them with PyTorch (the harness's check).
//
// oneDNN 2.6.3 (Debian 12) gets the recurrent weight gradient wrong when no src_iter is
// given (it multiplies each step's gate gradient by h_t instead of h_{t-1}): zero initial
// states are therefore passed explicitly.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"

extern "C" {
#include "bench_common.h"
}

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

static void usage(FILE *f) {
    std::fprintf(f, "usage: bench_onednn [--config tiny|small|medium|large] [--threads N] "
                    "[--steps N] [--dump PATH]\n");
}

// Copy between a plain host vector and a oneDNN memory, reordering when the memory's layout
// is not the plain one described by `plain`.
static void to_mem(engine &eng, stream &s, const std::vector<float> &v, const memory::desc &plain,
                   memory &m) {
    memory user(plain, eng, const_cast<float *>(v.data()));
    if (m.get_desc() == plain)
        std::memcpy(m.get_data_handle(), v.data(), v.size() * sizeof(float));
    else
        reorder(user, m).execute(s, user, m);
    s.wait();
}
static void from_mem(engine &eng, stream &s, memory &m, const memory::desc &plain,
                     std::vector<float> &v) {
    memory user(plain, eng, v.data());
    if (m.get_desc() == plain)
        std::memcpy(v.data(), m.get_data_handle(), v.size() * sizeof(float));
    else
        reorder(m, user).execute(s, m, user);
    s.wait();
}

int main(int argc, char **argv) {
    const bench_config *cfg = &bench_configs[0];
    int threads = 1;
    int64_t steps = -1;
    const char *dump = nullptr;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : nullptr;
        if (!std::strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        i++;
        if (!std::strcmp(a, "--config"))
            cfg = bench_find_config(v);
        else if (!std::strcmp(a, "--threads") && std::atoi(v) > 0)
            threads = std::atoi(v);
        else if (!std::strcmp(a, "--steps") && std::atoll(v) > 0)
            steps = std::atoll(v);
        else if (!std::strcmp(a, "--dump"))
            dump = v;
        else
            cfg = nullptr;
        if (!cfg) {
            std::fprintf(stderr, "bench_onednn: bad option %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    if (steps < 0)
        steps = cfg->steps;
    omp_set_num_threads(threads);
    const memory::dim B = cfg->B, T = cfg->T, I = cfg->I, H = cfg->H, G = 4;

    engine eng(engine::kind::cpu, 0);
    stream s(eng);

    // Plain layouts: x (T, B, I); kernel ldigo (1, 1, I, 4, H) = Keras' (I, 4H), gates i, f,
    // c, o as Keras; recurrent kernel (1, 1, H, 4, H); bias ldgo (1, 1, 4, H).
    memory::dims x_d = {T, B, I}, y_d = {T, B, H}, wl_d = {1, 1, I, G, H}, wi_d = {1, 1, H, G, H},
                 b_d = {1, 1, G, H}, st_d = {1, 1, B, H};
    auto md = [](const memory::dims &d, tag t) { return memory::desc(d, dt::f32, t); };
    auto any = [&](const memory::dims &d) { return md(d, tag::any); };
    const memory::desc x_md = md(x_d, tag::tnc), y_md = md(y_d, tag::tnc),
                       wl_md = md(wl_d, tag::ldigo), wi_md = md(wi_d, tag::ldigo),
                       b_md = md(b_d, tag::ldgo), st_md = md(st_d, tag::ldnc);

    lstm_forward::desc fd(prop_kind::forward_training, rnn_direction::unidirectional_left2right,
                          x_md, st_md, st_md, any(wl_d), any(wi_d), any(b_d), y_md, memory::desc(),
                          memory::desc());
    lstm_forward::primitive_desc fpd(fd, eng);
    lstm_backward::desc bd(prop_kind::backward, rnn_direction::unidirectional_left2right, x_md,
                           st_md, st_md, any(wl_d), any(wi_d), any(b_d), y_md, memory::desc(),
                           memory::desc(), x_md, st_md, st_md, any(wl_d), any(wi_d), any(b_d), y_md,
                           memory::desc(), memory::desc());
    lstm_backward::primitive_desc bpd(bd, eng, fpd);
    lstm_forward fwd(fpd);
    lstm_backward bwd(bpd);

    // Data and weights from a seeded generator (Glorot-like scales).
    std::mt19937 gen(42);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    auto fill = [&](std::vector<float> &v, float sc) {
        for (auto &e : v)
            e = sc * nd(gen);
    };
    std::vector<float> x(T * B * I), target(B), wl(I * G * H), wi(H * G * H), bias(G * H, 0.0f),
        wd(H), bdense(1, 0.0f);
    fill(x, 1.0f);
    fill(target, 1.0f);
    fill(wl, std::sqrt(2.0f / (float)(I + G * H)));
    fill(wi, std::sqrt(1.0f / (float)H));
    fill(wd, std::sqrt(2.0f / (float)(H + 1)));
    for (memory::dim h = 0; h < H; h++)
        bias[H + h] = 1.0f; // unit_forget_bias, as Keras

    std::vector<float> dwl(wl.size()), dwi(wi.size()), db(bias.size()), pred(B), dpred(B);
    // A primitive's weight (or gradient) memory: the plain vector itself when the primitive
    // takes the plain layout (then nothing is copied per step), else its own buffer that
    // each step fills or reads with a reorder.
    struct bound {
        memory m;
        bool copy;
    };
    auto bind = [&](const memory::desc &want, const memory::desc &plain, std::vector<float> &v) {
        return want == plain ? bound{memory(want, eng, v.data()), false}
                             : bound{memory(want, eng), true};
    };
    bound wl_f = bind(fpd.weights_layer_desc(), wl_md, wl),
          wi_f = bind(fpd.weights_iter_desc(), wi_md, wi), b_f = bind(fpd.bias_desc(), b_md, bias),
          wl_b = bind(bpd.weights_layer_desc(), wl_md, wl),
          wi_b = bind(bpd.weights_iter_desc(), wi_md, wi), b_b = bind(bpd.bias_desc(), b_md, bias),
          dwl_m = bind(bpd.diff_weights_layer_desc(), wl_md, dwl),
          dwi_m = bind(bpd.diff_weights_iter_desc(), wi_md, dwi),
          db_m = bind(bpd.diff_bias_desc(), b_md, db);
    memory x_m(x_md, eng), y_m(fpd.dst_layer_desc(), eng), h0_m(st_md, eng), c0_m(st_md, eng),
        ws_m(fpd.workspace_desc(), eng), dx_m(bpd.diff_src_layer_desc(), eng),
        dh0_m(bpd.diff_src_iter_desc(), eng), dc0_m(bpd.diff_src_iter_c_desc(), eng),
        dy_m(bpd.diff_dst_layer_desc(), eng);
    std::memcpy(x_m.get_data_handle(), x.data(), x.size() * sizeof(float));
    std::memset(h0_m.get_data_handle(), 0, (size_t)(B * H) * sizeof(float));
    std::memset(c0_m.get_data_handle(), 0, (size_t)(B * H) * sizeof(float));
    const bool dy_plain = dy_m.get_desc() == y_md && fpd.dst_layer_desc() == y_md;
    if (!dy_plain) {
        std::fprintf(stderr, "bench_onednn: oneDNN chose a non-tnc dst layout\n");
        return 1;
    }
    float *y = (float *)y_m.get_data_handle(), *dy = (float *)dy_m.get_data_handle();
    std::memset(dy, 0, (size_t)(T * B * H) * sizeof(float));
    const float lr = 1e-3f;
    double loss = 0;

    // One step. The weights live as plain vectors (what SGD updates); where a primitive wants
    // another layout, each step reorders them in and the gradients out.
    auto in = [&](const std::vector<float> &v, const memory::desc &plain, bound &b) {
        if (b.copy)
            to_mem(eng, s, v, plain, b.m);
    };
    auto out = [&](bound &b, const memory::desc &plain, std::vector<float> &v) {
        if (b.copy)
            from_mem(eng, s, b.m, plain, v);
    };
    auto step = [&]() {
        in(wl, wl_md, wl_f);
        in(wi, wi_md, wi_f);
        in(bias, b_md, b_f);
        fwd.execute(s, {{DNNL_ARG_SRC_LAYER, x_m},
                        {DNNL_ARG_SRC_ITER, h0_m},
                        {DNNL_ARG_SRC_ITER_C, c0_m},
                        {DNNL_ARG_WEIGHTS_LAYER, wl_f.m},
                        {DNNL_ARG_WEIGHTS_ITER, wi_f.m},
                        {DNNL_ARG_BIAS, b_f.m},
                        {DNNL_ARG_DST_LAYER, y_m},
                        {DNNL_ARG_WORKSPACE, ws_m}});
        s.wait();
        // Dense(1) on the last step's h, MSE, and their gradients.
        const float *hT = y + (T - 1) * B * H;
        float *dhT = dy + (T - 1) * B * H;
        loss = 0;
        for (memory::dim b = 0; b < B; b++) {
            float p = bdense[0];
            for (memory::dim h = 0; h < H; h++)
                p += hT[b * H + h] * wd[h];
            pred[b] = p;
            loss += (double)(p - target[b]) * (p - target[b]) / (double)B;
            dpred[b] = 2.0f * (p - target[b]) / (float)B;
        }
        for (memory::dim b = 0; b < B; b++)
            for (memory::dim h = 0; h < H; h++)
                dhT[b * H + h] = dpred[b] * wd[h];
        in(wl, wl_md, wl_b);
        in(wi, wi_md, wi_b);
        in(bias, b_md, b_b);
        // oneDNN accumulates into the weight gradients: zero them first
        for (bound *g : {&dwl_m, &dwi_m, &db_m})
            std::memset(g->m.get_data_handle(), 0, g->m.get_desc().get_size());
        bwd.execute(s, {{DNNL_ARG_SRC_LAYER, x_m},
                        {DNNL_ARG_SRC_ITER, h0_m},
                        {DNNL_ARG_SRC_ITER_C, c0_m},
                        {DNNL_ARG_WEIGHTS_LAYER, wl_b.m},
                        {DNNL_ARG_WEIGHTS_ITER, wi_b.m},
                        {DNNL_ARG_BIAS, b_b.m},
                        {DNNL_ARG_DST_LAYER, y_m},
                        {DNNL_ARG_DIFF_SRC_LAYER, dx_m},
                        {DNNL_ARG_DIFF_SRC_ITER, dh0_m},
                        {DNNL_ARG_DIFF_SRC_ITER_C, dc0_m},
                        {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl_m.m},
                        {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi_m.m},
                        {DNNL_ARG_DIFF_BIAS, db_m.m},
                        {DNNL_ARG_DIFF_DST_LAYER, dy_m},
                        {DNNL_ARG_WORKSPACE, ws_m}});
        s.wait();
        out(dwl_m, wl_md, dwl);
        out(dwi_m, wi_md, dwi);
        out(db_m, b_md, db);
    };
    auto sgd = [&]() {
        const float *hT = y + (T - 1) * B * H;
        for (memory::dim h = 0; h < H; h++) {
            float g = 0;
            for (memory::dim b = 0; b < B; b++)
                g += dpred[b] * hT[b * H + h];
            wd[h] -= lr * g;
        }
        float gb = 0;
        for (memory::dim b = 0; b < B; b++)
            gb += dpred[b];
        bdense[0] -= lr * gb;
        for (size_t i = 0; i < wl.size(); i++)
            wl[i] -= lr * dwl[i];
        for (size_t i = 0; i < wi.size(); i++)
            wi[i] -= lr * dwi[i];
        for (size_t i = 0; i < bias.size(); i++)
            bias[i] -= lr * db[i];
    };

    if (dump) { // one step's values for check_onednn.py, before any update
        FILE *f = std::fopen(dump, "w");
        if (!f) {
            std::perror(dump);
            return 1;
        }
        step();
        auto arr = [&](const char *name, const std::vector<float> &v, bool last) {
            std::fprintf(f, "\"%s\":[", name);
            for (size_t i = 0; i < v.size(); i++)
                std::fprintf(f, "%s%.9g", i ? "," : "", (double)v[i]);
            std::fprintf(f, "]%s\n", last ? "" : ",");
        };
        std::fprintf(f, "{\"B\":%ld,\"T\":%ld,\"I\":%ld,\"H\":%ld,\"loss\":%.9g,\n", (long)B,
                     (long)T, (long)I, (long)H, loss);
        arr("x_tbi", x, false);
        arr("target", target, false);
        arr("kernel", wl, false);
        arr("recurrent_kernel", wi, false);
        arr("bias", bias, false);
        arr("dense_kernel", wd, false);
        arr("dense_bias", bdense, false);
        arr("d_kernel", dwl, false);
        arr("d_recurrent_kernel", dwi, false);
        arr("d_bias", db, true);
        std::fprintf(f, "}\n");
        if (std::fclose(f)) {
            std::perror(dump);
            return 1;
        }
        return 0;
    }

    int64_t warm = steps / 10 + 1;
    std::vector<double> ms((size_t)steps);
    for (int64_t k = -warm; k < steps; k++) {
        double t0 = bench_now();
        step();
        sgd();
        if (k >= 0)
            ms[(size_t)k] = (bench_now() - t0) * 1e3;
    }
    std::sort(ms.begin(), ms.end());
    double med = ms[(size_t)steps / 2], mn = ms[0];
    double flops = 3.0 * (2.0 * (double)(B * T * (I + H) * G * H) + 2.0 * (double)(B * H));
    std::printf("{\"config\":\"%s\",\"B\":%ld,\"T\":%ld,\"I\":%ld,\"H\":%ld,\"cell\":\"lstm\","
                "\"impl\":\"onednn\",\"dtype\":\"f32\",\"threads\":%d,\"steps\":%ld,"
                "\"median_ms\":%.6f,\"min_ms\":%.6f,\"gflops\":%.3f,\"loss\":%.6g,"
                "\"onednn\":\"%d.%d.%d\"}\n",
                cfg->name, (long)B, (long)T, (long)I, (long)H, threads, (long)steps, med, mn,
                flops / (med * 1e-3) / 1e9, loss, dnnl_version()->major, dnnl_version()->minor,
                dnnl_version()->patch);
    return 0;
}
