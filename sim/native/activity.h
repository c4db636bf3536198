// The vector operations of chosen tiles of the tile harness (tile_model.h), for a trace
// (host/trace.py): each operation a microthread slot ran, from its launch to its last
// beat's leaving the pipeline, with the cycles of its first and last beat, its beats, and
// the tile's counters when it ended.  wafer.cpp includes it after DIE_MODEL, for the tile
// harness only; die_ports.h names the core's `activity` port and its fields
// (rtl.core.vector.activity_layout).
//
// Each cycle is read at its start, before the clock edge: the port is decided from
// registers, so after a tile's last clock it says what the tile does in the cycle after,
// and a tile the harness skips (asleep) goes on doing the same, which is why nothing here
// wakes it or clocks it.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace tessera {

class Activity {
  public:
    struct Probe {
        const DieModel* die;
        int x, y;                        // on its die
    };

    // What one finished operation was; `Operation::WORDS` words apiece for Python.
    struct Operation {
        uint64_t probe, slot, op, start, first_beat, last_beat, end, beats, sram_reads,
            wavelets_in, wavelets_out;
        static constexpr int WORDS = OPERATION_WORDS;   // host.wafer.VectorOperation's
    };
    static_assert(sizeof(Operation) == Operation::WORDS * sizeof(uint64_t),
                  "an operation is the words host.wafer.VectorOperation reads");

    // Those of `probes` that start in cycles first..last-1.
    Activity(std::vector<Probe> probes, uint64_t first, uint64_t last)
        : probes_(std::move(probes)), open_(probes_.size() * SLOTS), first_(first), last_(last) {}

    void sample(uint64_t cycle) {
        for (size_t k = 0; k < probes_.size(); ++k) {
            const Vtessera_tile* top = probes_[k].die->peek(probes_[k].x, probes_[k].y).top;
            const uint32_t value = ACTIVITY(top);
            for (int slot = 0; slot < SLOTS; ++slot) {
                Open& open = open_[k * SLOTS + slot];
                const bool active = ACTIVITY_ACTIVE(value, slot);
                if (open.running && !active && open.start >= first_ && open.start < last_) {
                    finished_.push_back({k, uint64_t(slot), open.op, open.start,
                                         open.beats ? open.first_beat : open.start,
                                         open.beats ? open.last_beat : open.start, cycle,
                                         open.beats, top->COUNTER_SRAM_READS,
                                         top->COUNTER_WAVELETS_IN, top->COUNTER_WAVELETS_OUT});
                }
                if (!active) open.running = false;
                if (active && !open.running) open = {true, ACTIVITY_OP(value, slot), cycle};
                if (active && ACTIVITY_BEAT(value) && ACTIVITY_BEAT_SLOT(value) == uint32_t(slot)) {
                    if (!open.beats) open.first_beat = cycle;
                    open.last_beat = cycle;
                    open.beats++;
                }
            }
        }
    }

    // Up to `max` finished operations into `out`, forgotten here; returns how many.
    int take(uint64_t* out, int max) {
        const int n = int(finished_.size()) < max ? int(finished_.size()) : max;
        for (int k = 0; k < n; ++k) {
            std::memcpy(out + size_t(k) * Operation::WORDS, &finished_[k], sizeof(Operation));
        }
        finished_.erase(finished_.begin(), finished_.begin() + n);
        return n;
    }

  private:
    struct Open {                        // what a slot is running
        bool running = false;
        uint64_t op = 0, start = 0, first_beat = 0, last_beat = 0, beats = 0;
    };

    std::vector<Probe> probes_;
    std::vector<Open> open_;             // [probe * SLOTS + slot]
    uint64_t first_, last_;
    std::vector<Operation> finished_;
};

}  // namespace tessera
