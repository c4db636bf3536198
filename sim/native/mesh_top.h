// The Verilog mesh top (rtl/mesh.py, routers placed as instances), Verilated whole,
// behind the interface of mesh.h.  It is slow to build and to run; it exists to
// check that the C++-wired mesh of mesh.h behaves exactly like the real mesh.
//
// fabric_ports.h defines MESH_WIDTH, MESH_HEIGHT, BIND_RAMPS(top, ins, outs), the
// config member names and MESH_CONFIG_{X,Y,WRITE}_SHIFT.
#pragma once

#include "Vtessera_mesh.h"
#include "verilated.h"
#include "fabric_ports.h"
#include "link_ports.h"

#include <cstdint>
#include <vector>

namespace tessera {

class MeshTop {
  public:
    static constexpr int width = MESH_WIDTH, height = MESH_HEIGHT, nodes = MESH_WIDTH * MESH_HEIGHT;

    MeshTop() : top_(new Vtessera_mesh) {
        BIND_RAMPS(top_, ins_, outs_)
        top_->clk = 0;
        top_->eval();  // the first eval only initialises: it must not be a clock edge
    }
    ~MeshTop() { top_->final(); delete top_; }
    MeshTop(const MeshTop&) = delete;
    MeshTop& operator=(const MeshTop&) = delete;

    LinkPorts& ramp_in(int node) { return ins_[node]; }
    LinkPorts& ramp_out(int node) { return outs_[node]; }

    void reset(const std::vector<RouteWrite>& routes) {
        top_->rst = 1;
        for (const RouteWrite& w : routes) {
            top_->CONFIG_VALID = 1;
            top_->CONFIG_PAYLOAD = (uint64_t(w.x) << MESH_CONFIG_X_SHIFT)
                | (uint64_t(w.y) << MESH_CONFIG_Y_SHIFT) | (w.word << MESH_CONFIG_WRITE_SHIFT);
            clock();
        }
        top_->CONFIG_VALID = 0;
        clock();
        top_->rst = 0;
    }

    template <class Before, class After>
    void run(uint64_t cycles, Before&& before, After&& after) {
        for (uint64_t n = 0; n < cycles; ++n) {
            for (int node = 0; node < nodes; ++node) before(node);
            clock();
            for (int node = 0; node < nodes; ++node) after(node);
        }
    }

  private:
    void clock() {
        top_->clk = 1; top_->eval();
        top_->clk = 0; top_->eval();
    }

    Vtessera_mesh* top_;
    LinkPorts ins_[nodes], outs_[nodes];
};

}  // namespace tessera
