// A W x H mesh of Verilated routers, wired link to link in C++.
//
// Every router output (valid, wavelet, returned credit) is a register, so a cycle
// is exact in two phases: copy each router's outputs to its neighbours' inputs,
// then clock every router.  This is the same scheme the wafer uses between dies;
// one Verilated router model serves every tile, which keeps the build small and
// the simulation cache-friendly.
//
// router_ports.h (generated from the router's signature) defines MESH_WIDTH,
// MESH_HEIGHT, BIND_ROUTER(top, inputs, outputs) and the config member names.
#pragma once

#include "Vtessera_router.h"
#include "verilated.h"
#include "router_ports.h"

#include <cstdint>
#include <vector>

namespace tessera {

enum Port { N = 0, E = 1, S = 2, W = 3, RAMP = 4, PORTS = 5 };

// The four members of one link end of a Verilated router.
struct LinkPorts {
    CData* valid;
    QData* wavelet;
    CData* credit;
    CData* credit_color;
};

struct RouterModel {
    Vtessera_router* top;
    LinkPorts inputs[PORTS];   // valid/wavelet driven by us, credit read back
    LinkPorts outputs[PORTS];  // valid/wavelet read back, credit driven by us
};

class Mesh {
  public:
    static constexpr int width = MESH_WIDTH, height = MESH_HEIGHT, nodes = MESH_WIDTH * MESH_HEIGHT;

    Mesh() : routers_(nodes) {
        for (int i = 0; i < nodes; ++i) {
            RouterModel& r = routers_[i];
            r.top = new Vtessera_router;
            BIND_ROUTER(r.top, r.inputs, r.outputs)
            r.top->x = i % width;
            r.top->y = i / width;
        }
    }
    ~Mesh() {
        for (RouterModel& r : routers_) { r.top->final(); delete r.top; }
    }
    Mesh(const Mesh&) = delete;
    Mesh& operator=(const Mesh&) = delete;

    RouterModel& router(int x, int y) { return routers_[y * width + x]; }
    RouterModel& router(int node) { return routers_[node]; }

    // Hold reset while writing route-table words to (x, y), then release it.
    struct RouteWrite { int x, y; uint64_t word; };
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

    // One cycle.  The caller has set the ramp inputs (and edge links) for it.
    void tick() {
        for (int y = 0; y < height; ++y)
            for (int x = 0; x < width; ++x) {
                RouterModel& r = router(x, y);
                if (y > 0) join(r, N, router(x, y - 1), S);
                if (x < width - 1) join(r, E, router(x + 1, y), W);
                if (y < height - 1) join(r, S, router(x, y + 1), N);
                if (x > 0) join(r, W, router(x - 1, y), E);
            }
        for (RouterModel& r : routers_) clock(r);
    }

  private:
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
};

}  // namespace tessera
