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
#include "Vtessera_router___024root.h"  // for the clock trigger below
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
    // (to read its ramp).  The rows are split between this thread and a helper.
    // Only the border rows (the last of the upper half, the first of the lower)
    // face the other thread, and they read it from a snapshot: after clocking its
    // border row, a thread copies what that row shows the other half (a wavelet
    // and a returned credit a column) into one of two snapshots, by the cycle's
    // parity, and publishes the cycle.  A thread joins and clocks all its other
    // rows first, then waits for the other's snapshot of the previous cycle, so
    // most of a cycle's work overlaps the other thread's; the two never drift
    // more than a cycle apart.  before and after for a node run on the thread
    // that owns its row.
    template <class Before, class After>
    void run(uint64_t cycles, Before&& before, After&& after) {
        const int middle = height / 2;
        auto rows = [&](int first, int last) {
            const int half = first == 0 ? 0 : 1;
            const int border = half == 0 ? middle - 1 : middle;  // the row the other half sees
            const Port facing = half == 0 ? S : N;
            const uint64_t done_before = published_[half].load(std::memory_order_relaxed);
            for (uint64_t n = 0; n < cycles; ++n) {
                for (int y = first; y < last; ++y)
                    for (int x = 0; x < width; ++x) {
                        before(y * width + x);
                        join_all(x, y, first, last);
                    }
                for (int y = first; y < last; ++y) {
                    if (parallel && y == border) continue;
                    for (int x = 0; x < width; ++x) { clock(router(x, y)); after(y * width + x); }
                }
                if (!parallel) continue;
                const uint64_t cycle = done_before + n;
                while (published_[1 - half].load(std::memory_order_acquire) < cycle) relax();
                const auto& theirs = border_[1 - half][cycle % 2];
                for (int x = 0; x < width; ++x) {
                    join(router(x, border), facing, theirs[x]);
                    clock(router(x, border));
                    after(border * width + x);
                }
                auto& mine = border_[half][(cycle + 1) % 2];
                for (int x = 0; x < width; ++x) mine[x] = Edge::of(router(x, border), facing);
                published_[half].store(cycle + 1, std::memory_order_release);
            }
        };
        if (!parallel) return rows(0, height);
        const uint64_t cycle = published_[0].load(std::memory_order_relaxed);
        for (int x = 0; x < width; ++x) {             // what the first cycle reads
            border_[0][cycle % 2][x] = Edge::of(router(x, middle - 1), S);
            border_[1][cycle % 2][x] = Edge::of(router(x, middle), N);
        }
        std::thread helper(rows, 0, middle);
        rows(middle, height);
        helper.join();
    }

  private:
    // What a router shows its neighbour across one link: its output and the credit
    // its input returns.
    struct Edge {
        CData valid, credit, credit_color;
        QData wavelet;
        static Edge of(RouterModel& r, Port port) {
            return {*r.outputs[port].valid, *r.inputs[port].credit,
                    *r.inputs[port].credit_color, *r.outputs[port].wavelet};
        }
    };

    // Rows first..last-1 are this thread's; a neighbour beyond them is the other
    // thread's, joined later from its snapshot.
    void join_all(int x, int y, int first, int last) {
        RouterModel& r = router(x, y);
        if (y - 1 >= first) join(r, N, router(x, y - 1), S);
        if (x < width - 1) join(r, E, router(x + 1, y), W);
        if (y + 1 < last) join(r, S, router(x, y + 1), N);
        if (x > 0) join(r, W, router(x - 1, y), E);
    }

    static void join(RouterModel& r, Port mine, const Edge& edge) {
        *r.inputs[mine].valid = edge.valid;
        *r.inputs[mine].wavelet = edge.wavelet;
        *r.outputs[mine].credit = edge.credit;
        *r.outputs[mine].credit_color = edge.credit_color;
    }

    // Spin politely: the two threads may share one physical core.
    static void relax() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }

    // r's port `mine` faces n's port `theirs`: take n's wavelet and n's returned credit.
    static void join(RouterModel& r, Port mine, RouterModel& n, Port theirs) {
        *r.inputs[mine].valid = *n.outputs[theirs].valid;
        *r.inputs[mine].wavelet = *n.outputs[theirs].wavelet;
        *r.outputs[mine].credit = *n.inputs[theirs].credit;
        *r.outputs[mine].credit_color = *n.inputs[theirs].credit_color;
    }

    // One rising edge.  Verilator clocks the model when clk differs from the value
    // it saw at the previous eval(); lowering clk would take a second eval() that
    // only re-evaluates the input logic (about 7% of the run), so the model is
    // told directly that it last saw clk low.  The member is Verilator's
    // (as of the pinned 5.048); a Verilator without it fails to compile here.
    static void clock(RouterModel& r) {
        r.top->clk = 1; r.top->eval();
        r.top->clk = 0; r.top->rootp->__Vtrigprevexpr___TOP__clk__0 = 0;
    }

    std::vector<RouterModel> routers_;
    // border_[half][parity][x]: the upper half's last row (0) or the lower half's
    // first row (1), as the other half reads it.
    std::vector<Edge> border_[2][2] = {{std::vector<Edge>(width), std::vector<Edge>(width)},
                                       {std::vector<Edge>(width), std::vector<Edge>(width)}};
    // published_[half]: how many cycles that half has completed, snapshot included.
    std::atomic<uint64_t> published_[2] = {0, 0};
};

}  // namespace tessera
