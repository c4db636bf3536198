// A waveform of chosen tiles of the tile harness (tile_model.h), for GTKWave or Surfer:
// each tile's links and its core's state, taken from the model the harness steps and
// written as FST by the writer Verilator ships (fstcpp, libfstwriter).  wafer.cpp
// includes it after DIE_MODEL, for the tile harness only; die_ports.h names the signals.
//
// Time counts the run's cycles from `origin`, 1 ns a cycle.  Each cycle is taken twice:
// at its start, the clock low, the inputs its clock edge takes; half a nanosecond later,
// the clock high, what that edge made.  A tile the harness skips (asleep) keeps its
// state, its CYCLES counter caught up as a status read does (DieModel::observe).
#pragma once

#include "fstcpp/fstcpp_variable_info.cpp"    // the writer's code, as verilated_fst_c.cpp
#include "fstcpp/fstcpp_writer.cpp"           // includes it

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tessera {

class Waves {
  public:
    struct Probe {
        DieModel* die;
        int x, y;                        // on its die
        std::string name;                // its scope
    };

    // Cycles first..last-1 of the wafer's count, of each probe's tile.
    Waves(const char* path, uint64_t origin, uint64_t first, uint64_t last,
          std::vector<Probe> probes)
        : origin_(origin), first_(first), last_(last), probes_(std::move(probes)) {
        writer_.open(path);
        writer_.setTimecale(-10);                     // 100 ps: 10 to a cycle
        writer_.setWriterPackType(fst::WriterPackType::LZ4);
        writer_.setWriter("tessera wafer harness");
        static const char* const sides[4] = WAVES_SIDES;
        scope("wafer");
        add("clk", &clock_, 1);
        for (const Probe& probe : probes_) {
            const DieModel::Tile& t = probe.die->observe(probe.x, probe.y);
            const Vtessera_tile* top = t.top;
            scope(probe.name);
#define TESSERA_WAVE(name, member, bits) add(name, &top->member, bits);
            WAVES_STATE(TESSERA_WAVE)
            scope("counters");
            WAVES_COUNTERS(TESSERA_WAVE)
#undef TESSERA_WAVE
            writer_.upscope();
            for (int side = 0; side < 4; ++side) {
                link(std::string("inputs_") + sides[side], t.inputs[side]);
                link(std::string("outputs_") + sides[side], t.outputs[side]);
            }
            writer_.upscope();
        }
        writer_.upscope();
    }

    // Take the values of the cycle's start (edge false) or of its clock edge (true).
    void sample(uint64_t cycle, bool edge) {
        if (cycle < first_ || cycle >= last_) return;
        writer_.emitTimeChange((cycle - origin_) * 10 + (edge ? 5 : 0));
        clock_ = edge;
        for (const Probe& probe : probes_) probe.die->observe(probe.x, probe.y);
        for (Var& var : vars_) {
            const uint64_t value = var.read(var.value);
            if (!started_ || value != var.last) writer_.emitValueChange(var.handle, value);
            var.last = value;
        }
        started_ = true;
    }

  private:
    struct Var {
        fst::Handle handle;
        const void* value;
        uint64_t (*read)(const void*);
        uint64_t last;
    };

    void scope(const std::string& name) {
        writer_.setScope(fst::Hierarchy::ScopeType::VCD_MODULE, name, std::string{});
    }

    void link(const std::string& name, const Link& link) {
        scope(name);
        add("valid", link.valid, 1);
        add("wavelet", link.wavelet, WAVELET_BITS);
        add("credit", link.credit, 1);
        add("credit_color", link.credit_color, COLOR_BITS);
        writer_.upscope();
    }

    template <class T>
    void add(const std::string& name, const T* value, uint32_t bits) {
        vars_.push_back({writer_.createVar(fst::Hierarchy::VarType::VCD_WIRE,
                                           fst::Hierarchy::VarDirection::IMPLICIT, bits, name, 0),
                         value, [](const void* v) { return uint64_t(*static_cast<const T*>(v)); },
                         0});
    }

    fst::Writer writer_;
    uint64_t origin_, first_, last_;
    std::vector<Probe> probes_;
    uint8_t clock_ = 0;
    std::vector<Var> vars_;
    bool started_ = false;
};

}  // namespace tessera
