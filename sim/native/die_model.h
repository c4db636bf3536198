// One die of the wafer harness (wafer.cpp) as one Verilated model: the die RTL
// (rtl/die.py) whole, its tiles a hierarchical block, the remap of dead tiles its own.
//
// Every die output is a register or decided from registers, so the harness moves the
// links from the current outputs and then clocks each die.  A back-door access clocks
// only its own die: under reset (host/wafer.py checks) a clock changes nothing but the
// memories written, so loading a wafer costs its tiles, not its tiles times its dies.
#pragma once

#include "Vtessera_die.h"
#include "verilated.h"

#include <cstddef>
#include <cstdint>

namespace tessera {

class DieModel {
  public:
    Link edges[4][EDGE_MAX][2];          // [side][index][0: input, 1: output]

    DieModel() : top_(new Vtessera_die) {
        BIND_EDGES(top_, edges)
        top_->clk = 0;
        top_->eval();     // the first eval only initialises: it must not be a clock edge
    }
    ~DieModel() { top_->final(); delete top_; }
    DieModel(const DieModel&) = delete;
    DieModel& operator=(const DieModel&) = delete;

    // Static inputs: the die's origin on the wafer, reset, enable, the dead physical
    // tiles, and the logical tile (x, y) that the back door and the status show.
    void set(int origin_x, int origin_y, int reset, int enable, uint64_t dead, int x, int y) {
        top_->origin_x = origin_x;
        top_->origin_y = origin_y;
        top_->rst = reset;
        top_->enable = enable;
        DIE_SET_DEAD(top_, dead);
        select(x, y);
    }

    void select(int x, int y) {
        top_->select_x = x;
        top_->select_y = y;
        top_->eval();
    }

    // One wafer cycle, as tile_model.h steps it: the die is the one thing to clock, and
    // every tile of it is evaluated.
    template <class Add>
    void begin(uint64_t, Add&& add) { add(0); }
    void clock_unit(size_t) {
        clock();
        evaluated_ += DIE_WIDTH * DIE_HEIGHT;
    }
    void end(uint64_t) {}

    uint64_t evaluated() const { return evaluated_; }

    void clock() {
        top_->clk = 1;
        top_->eval();
        top_->clk = 0;
        top_->eval();
    }

    // A route-table word addressed to a logical tile (rtl.mesh.pack_mesh_config).
    void config(uint64_t word) {
        top_->DIE_CONFIG_VALID = 1;
        top_->DIE_CONFIG_PAYLOAD = word;
        clock();
        top_->DIE_CONFIG_VALID = 0;
        top_->eval();
    }

    // The back door of the selected tile: each write clocks the die once; so does a row
    // read, since the SRAMs' read ports are registered.
    void write_code(int address, uint32_t word) {
        BACKDOOR_WRITE_CODE(top_, address, word);
        clock();
        BACKDOOR_CODE_DONE(top_);
        top_->eval();
    }
    void write_row(int acc, int row, const uint32_t* words) {
        if (acc) { BACKDOOR_ACC_WRITE(top_, row, words); } else { BACKDOOR_MEM_WRITE(top_, row, words); }
        clock();
        if (acc) { BACKDOOR_ACC_DONE(top_); } else { BACKDOOR_MEM_DONE(top_); }
        top_->eval();
    }
    void read_row(int acc, int row, uint32_t* words) {
        if (acc) { BACKDOOR_ACC_ROW(top_, row); } else { BACKDOOR_MEM_ROW(top_, row); }
        clock();
        if (acc) { BACKDOOR_ACC_READ(top_, words); } else { BACKDOOR_MEM_READ(top_, words); }
    }

    // Status of the selected tile: halted, fault, fault_pc, pc, register `reg`, counters.
    void status(int reg, uint32_t* out) {
        BACKDOOR_SELECT_REG(top_, reg);
        top_->eval();
        STATUS(top_, out);
    }

    bool all_idle() const { return top_->all_idle; }

  private:
    Vtessera_die* top_;
    uint64_t evaluated_ = 0;
};

}  // namespace tessera
