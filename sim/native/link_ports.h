// What both native fabrics (mesh.h, mesh_top.h) share: ports, link ends, route writes.
#pragma once

#include "verilated.h"

#include <cstdint>

namespace tessera {

enum Port { N = 0, E = 1, S = 2, W = 3, RAMP = 4, PORTS = 5 };

// The four members of one link end of a Verilated model.
struct LinkPorts {
    CData* valid;
    QData* wavelet;
    CData* credit;
    CData* credit_color;
};

// A route-table word for the router at (x, y).
struct RouteWrite { int x, y; uint64_t word; };

}  // namespace tessera
