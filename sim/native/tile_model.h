// One die of the wafer harness (wafer.cpp) as DIE_WIDTH x DIE_HEIGHT Verilated tiles
// (rtl/tile.py, built skippable), one model for every tile, wired link to link in C++ as
// the die's logical mesh wires them.
//
// The die's remap hides its dead tiles: software, the links and the timing see a
// uniform logical mesh whatever the defect map (tests/test_wafer.py proves it of the
// die RTL), so only the logical tiles are simulated and the dead mask changes nothing.
// Every tile output is a register or decided from registers (the router's), so a
// cycle is exact in two phases, as between dies: join each tile's inputs to its
// neighbours' current outputs, then clock every tile.
//
// Idle tiles are skipped.  A tile that says it is quiescent (its RTL decides) is not
// clocked again until a wavelet or a credit reaches one of its links: until then none of
// its state but the CYCLES counter would change, and its outputs stay idle.  The cycles
// it skipped go to its `skipped` input, which the CYCLES counter adds at once, before
// anything reads the tile or clocks it again; the clock edge keeps them.
#pragma once

#include "Vtessera_tile.h"
#include "Vtessera_tile___024root.h"  // for the clock trigger in clock()
#include "verilated.h"

#include <cstdint>
#include <vector>

namespace tessera {

class DieModel {
  public:
    struct Tile {
        Vtessera_tile* top;
        Link inputs[4];                  // by side, as rtl.tile.MESH_PORTS orders them
        Link outputs[4];
        bool asleep = false;
        uint64_t asleep_from = 0;        // the first cycle it skipped
        uint64_t evaluated = 0;          // its clocks in wafer cycles
    };

    Link edges[4][EDGE_MAX][2];          // [side][index][0: input, 1: output]

    DieModel() : tiles_(DIE_WIDTH * DIE_HEIGHT) {
        for (Tile& t : tiles_) {
            t.top = new Vtessera_tile;
            BIND_TILE(t.top, t.inputs, t.outputs)
            t.top->clk = 0;
            t.top->TILE_SKIPPED = 0;
            t.top->eval();  // the first eval only initialises: it must not be a clock edge
        }
        for (int i = 0; i < DIE_WIDTH; ++i) {
            edge(NORTH, i, tile(i, 0));
            edge(SOUTH, i, tile(i, DIE_HEIGHT - 1));
        }
        for (int i = 0; i < DIE_HEIGHT; ++i) {
            edge(WEST, i, tile(0, i));
            edge(EAST, i, tile(DIE_WIDTH - 1, i));
        }
    }
    ~DieModel() {
        for (Tile& t : tiles_) { t.top->final(); delete t.top; }
    }
    DieModel(const DieModel&) = delete;
    DieModel& operator=(const DieModel&) = delete;

    // The tile takes reset, enable and its coordinates through registers (rtl.native),
    // so a change reaches its logic one clock later: that clock is given here, outside
    // the wafer's cycles.  Under reset it changes nothing but those registers.  Out of
    // reset the harness changes them only to start the cores after the front door, when
    // the routers have nothing to move and the cores are off; that clock is then like
    // the one a back-door read gives its tile.
    void set(int origin_x, int origin_y, int reset, int enable, uint64_t, int x, int y) {
        const bool changed = reset != reset_ || enable != enable_ || origin_x != origin_x_
                             || origin_y != origin_y_;
        reset_ = reset, enable_ = enable, origin_x_ = origin_x, origin_y_ = origin_y;
        for (int ty = 0; ty < DIE_HEIGHT; ++ty)
            for (int tx = 0; tx < DIE_WIDTH; ++tx) {
                Tile& t = tile(tx, ty);
                wake(t);
                t.top->x = origin_x + tx;
                t.top->y = origin_y + ty;
                t.top->reset = reset;
                t.top->enable = enable;
                if (changed) clock(t.top);
                t.top->eval();
            }
        select(x, y);
    }

    void select(int x, int y) { selected_ = &tile(x, y); }

    // One wafer cycle, `now`, in three steps; wafer.cpp shares the second among threads.
    // First every tile's inputs from its neighbours' outputs, and the tiles to clock:
    // those awake or with something arriving (`add` takes each one's index) ...
    template <class Add>
    void begin(uint64_t now, Add&& add) {
        now_ = now;
        for (int y = 0; y < DIE_HEIGHT; ++y)
            for (int x = 0; x < DIE_WIDTH; ++x) {
                if (x + 1 < DIE_WIDTH) join(tile(x, y), EAST, tile(x + 1, y), WEST);
                if (y + 1 < DIE_HEIGHT) join(tile(x, y), SOUTH, tile(x, y + 1), NORTH);
            }
        for (size_t k = 0; k < tiles_.size(); ++k)
            if (!tiles_[k].asleep || arriving(tiles_[k])) add(k);
    }

    // ... then the clock of each (on any thread: it touches that tile alone) ...
    void clock_unit(size_t k) {
        Tile& t = tiles_[k];
        wake(t);
        clock(t.top);
        t.evaluated++;
        if (t.top->TILE_QUIESCENT) {
            t.asleep = true;
            t.asleep_from = now_ + 1;
        }
    }

    // ... and the cycle is over.
    void end(uint64_t now) { now_ = now + 1; }

    // Tile clocks so far (skipped tiles not counted).
    uint64_t evaluated() const {
        uint64_t total = 0;
        for (const Tile& t : tiles_) total += t.evaluated;
        return total;
    }

    // Every tile clocked once, asleep or not (loading, under reset).
    void clock() {
        for (Tile& t : tiles_) {
            wake(t);
            clock(t.top);
        }
    }

    // A route-table word addressed to a logical tile (rtl.mesh.pack_mesh_config); under
    // reset a clock of that tile alone is a clock of the die.
    void config(uint64_t word) {
        Tile& t = tile(int(word >> CONFIG_X_SHIFT & 0xFF), int(word >> CONFIG_Y_SHIFT & 0xFF));
        wake(t);
        t.top->TILE_CONFIG_VALID = 1;
        t.top->TILE_CONFIG_PAYLOAD = word >> CONFIG_WRITE_SHIFT;
        clock(t.top);
        t.top->TILE_CONFIG_VALID = 0;
        t.top->eval();
    }

    // The back door of the selected tile, clocking only it (under reset, as above).
    void write_code(int address, uint32_t word) {
        Vtessera_tile* top = woken();
        BACKDOOR_WRITE_CODE(top, address, word);
        clock(top);
        BACKDOOR_CODE_DONE(top);
        top->eval();
    }
    void write_row(int acc, int row, const uint32_t* words) {
        Vtessera_tile* top = woken();
        if (acc) { BACKDOOR_ACC_WRITE(top, row, words); } else { BACKDOOR_MEM_WRITE(top, row, words); }
        clock(top);
        if (acc) { BACKDOOR_ACC_DONE(top); } else { BACKDOOR_MEM_DONE(top); }
        top->eval();
    }
    void read_row(int acc, int row, uint32_t* words) {
        Vtessera_tile* top = woken();
        if (acc) { BACKDOOR_ACC_ROW(top, row); } else { BACKDOOR_MEM_ROW(top, row); }
        clock(top);
        if (acc) { BACKDOOR_ACC_READ(top, words); } else { BACKDOOR_MEM_READ(top, words); }
    }

    // Reading changes nothing: a sleeping tile stays asleep, its counters caught up.
    void status(int reg, uint32_t* out) {
        Vtessera_tile* top = selected_->top;
        if (selected_->asleep) catch_up(*selected_);
        BACKDOOR_SELECT_REG(top, reg);
        top->eval();
        STATUS(top, out);
    }

    bool all_idle() const {
        for (const Tile& t : tiles_)
            if (!t.top->idle) return false;
        return true;
    }

    // Tile (x, y) as a waveform shows it (waves.h): like status(), reading changes nothing.
    const Tile& observe(int x, int y) {
        Tile& t = tile(x, y);
        if (t.asleep) {
            catch_up(t);
            t.top->eval();
        }
        return t;
    }

    // Tile (x, y) as its last evaluation left it, which an asleep tile's outputs stay:
    // its activity (activity.h), unlike its CYCLES counter, needs no catching up.
    const Tile& peek(int x, int y) const { return tiles_[y * DIE_WIDTH + x]; }

  private:
    Tile& tile(int x, int y) { return tiles_[y * DIE_WIDTH + x]; }

    // A sleeping tile's CYCLES counter, told the cycles it skipped (until it is clocked).
    void catch_up(Tile& t) { t.top->TILE_SKIPPED = uint32_t(now_ - t.asleep_from); }

    void edge(int side, int index, Tile& t) {
        edges[side][index][0] = t.inputs[side];
        edges[side][index][1] = t.outputs[side];
    }

    static bool arriving(const Tile& t) {
        for (int side = 0; side < 4; ++side)
            if (*t.inputs[side].valid || *t.outputs[side].credit) return true;
        return false;
    }

    // A sleeping tile, from now on clocked: the cycles it skipped go to its CYCLES counter.
    void wake(Tile& t) {
        if (!t.asleep) return;
        catch_up(t);
        t.asleep = false;
        t.top->eval();
    }

    Vtessera_tile* woken() {
        wake(*selected_);
        return selected_->top;
    }

    // Tiles a and b face each other, a's side `mine` to b's side `theirs`.
    static void join(Tile& a, int mine, Tile& b, int theirs) {
        *b.inputs[theirs].valid = *a.outputs[mine].valid;
        *b.inputs[theirs].wavelet = *a.outputs[mine].wavelet;
        *a.outputs[mine].credit = *b.inputs[theirs].credit;
        *a.outputs[mine].credit_color = *b.inputs[theirs].credit_color;
        *a.inputs[mine].valid = *b.outputs[theirs].valid;
        *a.inputs[mine].wavelet = *b.outputs[theirs].wavelet;
        *b.outputs[theirs].credit = *a.inputs[mine].credit;
        *b.outputs[theirs].credit_color = *a.inputs[mine].credit_color;
    }

    // The edge keeps what `skipped` said; from here it says zero.  One eval() a cycle:
    // an eval() at the falling edge would only recompute the logic of the inputs (every
    // output is a register or decided from registers), which the next rising edge's
    // eval() does first anyway, so the model is told directly that it last saw clk low,
    // as mesh.h does.  The member is Verilator's (as of the pinned 5.048); a Verilator
    // without it fails to compile here.
    static void clock(Vtessera_tile* top) {
        top->clk = 1;
        top->eval();
        top->TILE_SKIPPED = 0;
        top->clk = 0;
        top->rootp->__Vtrigprevexpr___TOP__clk__0 = 0;
    }

    std::vector<Tile> tiles_;
    Tile* selected_ = nullptr;
    uint64_t now_ = 0;                   // the cycle the wafer is in
    int reset_ = -1, enable_ = -1, origin_x_ = -1, origin_y_ = -1;  // as set() last set them
};

}  // namespace tessera
