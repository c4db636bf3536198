// A W x H mesh of Verilated routers, wired link to link in C++.
//
// Every router output (valid, wavelet, returned credit) is a register, so a cycle
// is exact in two phases: copy each router's outputs to its neighbours' inputs,
// then clock every router.  This is the same scheme the wafer uses between dies;
// one Verilated router model serves every tile, which keeps the build small and
// the simulation cache-friendly.
//
// fabric_ports.h (generated from the router's signature) defines MESH_WIDTH,
// MESH_HEIGHT, BIND_ROUTER(top, inputs, outputs) and the config member names.
// sim/native/mesh_top.h offers the same interface over the Verilog mesh top.
#pragma once

#include "Vtessera_router.h"
#include "verilated.h"
#include "fabric_ports.h"
#include "link_ports.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace tessera {

struct RouterModel {
    Vtessera_router* top;
    LinkPorts inputs[PORTS];   // valid/wavelet driven by us, credit read back
    LinkPorts outputs[PORTS];  // valid/wavelet read back, credit driven by us
};

class Mesh {
  public:
    static constexpr int width = MESH_WIDTH, height = MESH_HEIGHT, nodes = MESH_WIDTH * MESH_HEIGHT;
    static constexpr bool parallel = MESH_HEIGHT > 1;

    Mesh() : routers_(nodes) {
        for (int i = 0; i < nodes; ++i) {
            RouterModel& r = routers_[i];
            r.top = new Vtessera_router;
            BIND_ROUTER(r.top, r.inputs, r.outputs)
            r.top->x = i % width;
            r.top->y = i / width;
            r.top->clk = 0;
            r.top->eval();  // the first eval only initialises: it must not be a clock edge
        }
    }
    ~Mesh() {
        for (RouterModel& r : routers_) { r.top->final(); delete r.top; }
    }
    Mesh(const Mesh&) = delete;
    Mesh& operator=(const Mesh&) = delete;

    RouterModel& router(int x, int y) { return routers_[y * width + x]; }
    LinkPorts& ramp_in(int node) { return routers_[node].inputs[RAMP]; }
    LinkPorts& ramp_out(int node) { return routers_[node].outputs[RAMP]; }

    // Hold reset while writing route-table words to (x, y), then release it.
    void reset(const std::vector<RouteWrite>& routes) {
        for (RouterModel& r : routers_) r.top->reset = 1;
        for (const RouteWrite& w : routes) {
            RouterModel& r = router(w.x, w.y);
            r.top->CONFIG_VALID = 1;
            r.top->CONFIG_PAYLOAD = w.word;
            clock(r);
            r.top->CONFIG_VALID = 0;
        }
        for (RouterModel& r : routers_) { clock(r); r.top->reset = 0; clock(r); }
    }

    // Run `cycles` cycles.  Each cycle calls before(node) for every node (to drive
    // its ramp), copies the links, clocks every router, then calls after(node)
    // (to read its ramp).  The rows are split between this thread and a helper;
    // the two meet at a barrier before the clock edge and after it, so no router
    // is clocked before its neighbours have read its outputs.  before and after
    // for a node run on the thread that owns its row.
    template <class Before, class After>
    void run(uint64_t cycles, Before&& before, After&& after) {
        auto rows = [&](int first, int last) {
            for (uint64_t n = 0; n < cycles; ++n) {
                for (int y = first; y < last; ++y)
                    for (int x = 0; x < width; ++x) { before(y * width + x); join_all(x, y); }
                if (parallel) arrive();
                for (int y = first; y < last; ++y)
                    for (int x = 0; x < width; ++x) { clock(router(x, y)); after(y * width + x); }
                if (parallel) arrive();
            }
        };
        if (!parallel) return rows(0, height);
        std::thread helper(rows, 0, height / 2);
        rows(height / 2, height);
        helper.join();
    }

  private:
    void join_all(int x, int y) {
        RouterModel& r = router(x, y);
        if (y > 0) join(r, N, router(x, y - 1), S);
        if (x < width - 1) join(r, E, router(x + 1, y), W);
        if (y < height - 1) join(r, S, router(x, y + 1), N);
        if (x > 0) join(r, W, router(x - 1, y), E);
    }

    // Spin politely: the two threads may share one physical core.
    static void relax() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    // A two-party barrier on a generation counter.
    void arrive() {
        unsigned generation = barrier_generation_.load(std::memory_order_acquire);
        if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) == 1) {
            barrier_count_.store(0, std::memory_order_relaxed);
            barrier_generation_.fetch_add(1, std::memory_order_release);
        } else {
            while (barrier_generation_.load(std::memory_order_acquire) == generation) relax();
        }
    }

    // r's port `mine` faces n's port `theirs`: take n's wavelet and n's returned credit.
    static void join(RouterModel& r, Port mine, RouterModel& n, Port theirs) {
        *r.inputs[mine].valid = *n.outputs[theirs].valid;
        *r.inputs[mine].wavelet = *n.outputs[theirs].wavelet;
        *r.outputs[mine].credit = *n.inputs[theirs].credit;
        *r.outputs[mine].credit_color = *n.inputs[theirs].credit_color;
    }

    static void clock(RouterModel& r) {
        r.top->clk = 1; r.top->eval();
        r.top->clk = 0; r.top->eval();
    }

    std::vector<RouterModel> routers_;
    std::atomic<unsigned> barrier_count_{0}, barrier_generation_{0};
};

}  // namespace tessera
