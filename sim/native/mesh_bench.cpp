// Traffic generator and meter around a mesh of Verilated routers; no Python per cycle.
//
// Usage: mesh_bench TRAFFIC ROUTES_FILE WARMUP MEASURE SEED RATE [RATE ...]
//   TRAFFIC     uniform | transpose | neighbor | broadcast
//   ROUTES_FILE route-table writes, one "x y hexword" a line, made before traffic starts
//   RATE        offered load, wavelets per node per cycle
// Prints one JSON object per rate on stdout.
//
// Addressed traffic rides the XY colors.  A wavelet's 16-bit payload is a tag into
// the table of wavelets in flight, which holds its creation cycle; latency runs
// from creation (so it includes waiting at the source) to ejection at the
// destination ramp.  Broadcast traffic streams color 0 from the west tile of every
// row along a multicast route that drops a copy at every ramp.
//
// fabric_ports.h (generated from rtl/params.py and rtl/wavelet.py) also defines
// COLORS, FIRST_XY_COLOR, QUEUE_DEPTH, COLOR_SHIFT, DST_X_SHIFT and DST_Y_SHIFT,
// and TESSERA_MESH_TOP when the harness drives the Verilated mesh top instead of
// the C++-wired mesh (the two must agree to the cycle; tests compare them).
#include "fabric_ports.h"
#ifdef TESSERA_MESH_TOP
#include "mesh_top.h"
using Fabric = tessera::MeshTop;
#else
#include "mesh.h"
using Fabric = tessera::Mesh;
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <vector>

namespace {

constexpr int NODES = Fabric::nodes;
constexpr int XY_COLORS = COLORS - FIRST_XY_COLOR;
// The 16-bit payload of an addressed wavelet is a tag: source node and a slot of its ring.
constexpr int SLOTS = (1 << 16) / NODES;

// A small, fast generator per node, so that the traffic does not depend on threading.
struct Random {
    uint64_t state;
    uint64_t next() {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
        return state * 2685821657736338717ULL;
    }
    double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
};

enum class Traffic { uniform, transpose, neighbor, broadcast };

bool parse_traffic(const std::string& name, Traffic& traffic) {
    const char* names[] = {"uniform", "transpose", "neighbor", "broadcast"};
    for (int k = 0; k < 4; ++k)
        if (name == names[k]) { traffic = Traffic(k); return true; }
    return false;
}

struct Node {
    Random random;
    std::deque<uint64_t> waiting;   // creation cycles of wavelets not yet injected
    int credits[COLORS];
    int next_color = 0;
    uint32_t next_slot = 0;
    uint64_t born[SLOTS];           // creation cycle per ring slot
    std::atomic<int> in_flight{0};  // decremented by the destination's thread
    uint64_t created = 0, delivered = 0;
    std::vector<uint32_t> latencies;
    uint64_t digest = 14695981039346656037ULL;  // FNV-1a over (cycle, wavelet) of every ejection
};

class Bench {
  public:
    Bench(Traffic traffic, uint64_t seed) : traffic_(traffic), nodes_(NODES) {
        for (int i = 0; i < NODES; ++i) {
            nodes_[i].random.state = (seed + 1) * 0x9E3779B97F4A7C15ULL + uint64_t(i) * 0xD1B54A32D192ED03ULL;
            std::fill(std::begin(nodes_[i].credits), std::end(nodes_[i].credits), QUEUE_DEPTH);
        }
    }
    void reset(const std::vector<tessera::RouteWrite>& routes) { mesh_.reset(routes); }

    // Offer `rate` wavelets per source per cycle; meter the last `measure` cycles.
    void run(double rate, uint64_t warmup, uint64_t measure) {
        rate_ = rate;
        measure_from_ = cycle_ + warmup;
        uint64_t start = cycle_;
        mesh_.run(warmup + measure,
                  [&](int node) { create(node, start); drive(node, start); },
                  [&](int node) { collect(node, start); });
        cycle_ += warmup + measure;
    }

    uint64_t created() const { uint64_t n = 0; for (auto& s : nodes_) n += s.created; return n; }
    uint64_t delivered() const { uint64_t n = 0; for (auto& s : nodes_) n += s.delivered; return n; }
    uint64_t digest() const {
        uint64_t d = 0;
        for (auto& s : nodes_) d = (d ^ s.digest) * 1099511628211ULL;
        return d;
    }
    std::vector<uint32_t> latencies() const {
        std::vector<uint32_t> all;
        for (auto& s : nodes_) all.insert(all.end(), s.latencies.begin(), s.latencies.end());
        return all;
    }

  private:
    // Each node counts its own cycles, so no shared counter is written by two threads.
    uint64_t now(int node, uint64_t start) const { return start + ticks_[node]; }

    void create(int node, uint64_t start) {
        Node& s = nodes_[node];
        bool source = traffic_ != Traffic::broadcast || node % MESH_WIDTH == 0;
        if (source && s.random.uniform() < rate_) {
            s.waiting.push_back(now(node, start));
            if (now(node, start) >= measure_from_) ++s.created;
        }
    }

    int destination(int node) {
        int x = node % MESH_WIDTH, y = node / MESH_WIDTH;
        if (traffic_ == Traffic::transpose) return x * MESH_WIDTH + y;
        if (traffic_ == Traffic::neighbor)
            return ((y + 1) % MESH_HEIGHT) * MESH_WIDTH + (x + 1) % MESH_WIDTH;
        int d = int(nodes_[node].random.next() % (NODES - 1));
        return d >= node ? d + 1 : d;  // uniform over the other nodes
    }

    void drive(int node, uint64_t start) {
        Node& s = nodes_[node];
        tessera::LinkPorts& ramp = mesh_.ramp_in(node);
        *ramp.valid = 0;
        if (s.waiting.empty()) return;
        uint64_t wavelet;
        int color;
        if (traffic_ == Traffic::broadcast) {
            color = 0;
            if (s.credits[color] == 0) return;
            wavelet = (uint64_t(color) << COLOR_SHIFT) | (s.waiting.front() & 0xffff);
        } else {
            // Spread the source's wavelets over the XY colors that hold a credit.
            color = -1;
            for (int k = 0; k < XY_COLORS; ++k) {
                int c = FIRST_XY_COLOR + (s.next_color + k) % XY_COLORS;
                if (s.credits[c] > 0) { color = c; break; }
            }
            if (color < 0 || s.in_flight.load(std::memory_order_relaxed) == SLOTS) return;
            s.next_color = (color - FIRST_XY_COLOR + 1) % XY_COLORS;
            int dst = destination(node);
            uint32_t slot = s.next_slot;
            s.next_slot = (slot + 1) % SLOTS;
            s.born[slot] = s.waiting.front();
            s.in_flight.fetch_add(1, std::memory_order_relaxed);
            wavelet = (uint64_t(color) << COLOR_SHIFT) | (uint64_t(dst / MESH_WIDTH) << DST_Y_SHIFT)
                | (uint64_t(dst % MESH_WIDTH) << DST_X_SHIFT) | (node * SLOTS + slot);
        }
        s.waiting.pop_front();
        --s.credits[color];
        *ramp.valid = 1;
        *ramp.wavelet = wavelet;
    }

    void collect(int node, uint64_t start) {
        Node& s = nodes_[node];
        tessera::LinkPorts& in = mesh_.ramp_in(node);
        tessera::LinkPorts& out = mesh_.ramp_out(node);
        // What the ramp shows now leaves the router in the next cycle; latency counts it.
        uint64_t cycle = now(node, start) + 1;
        ++ticks_[node];
        if (*in.credit) ++s.credits[*in.credit_color];
        // The ramp consumer takes every wavelet at once and hands the credit straight back.
        *out.credit = *out.valid;
        if (!*out.valid) return;
        uint64_t wavelet = *out.wavelet;
        *out.credit_color = int(wavelet >> COLOR_SHIFT);
        uint32_t tag = wavelet & 0xffff;
        uint64_t born;
        if (traffic_ == Traffic::broadcast) {
            born = cycle - ((cycle - tag) & 0xffff);
        } else {
            Node& source = nodes_[tag / SLOTS];
            born = source.born[tag % SLOTS];
            source.in_flight.fetch_sub(1, std::memory_order_relaxed);
        }
        for (uint64_t word : {cycle, wavelet}) s.digest = (s.digest ^ word) * 1099511628211ULL;
        if (cycle >= measure_from_) {
            ++s.delivered;
            s.latencies.push_back(uint32_t(cycle - born));
        }
    }

    Traffic traffic_;
    Fabric mesh_;
    std::vector<Node> nodes_;
    uint64_t ticks_[NODES] = {};
    double rate_ = 0;
    uint64_t cycle_ = 0, measure_from_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 7) {
        std::fprintf(stderr, "usage: %s TRAFFIC ROUTES WARMUP MEASURE SEED RATE...\n", argv[0]);
        return 2;
    }
    Traffic traffic;
    if (!parse_traffic(argv[1], traffic)) {
        std::fprintf(stderr, "unknown traffic %s\n", argv[1]);
        return 2;
    }
    std::vector<tessera::RouteWrite> routes;
    if (FILE* f = std::fopen(argv[2], "r")) {
        int x, y;
        unsigned long long word;
        while (std::fscanf(f, "%d %d %llx", &x, &y, &word) == 3) routes.push_back({x, y, word});
        std::fclose(f);
    } else {
        std::fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    uint64_t warmup = std::strtoull(argv[3], nullptr, 10);
    uint64_t measure = std::strtoull(argv[4], nullptr, 10);
    uint64_t seed = std::strtoull(argv[5], nullptr, 10);
    for (int i = 6; i < argc; ++i) {
        double rate = std::atof(argv[i]);
        // A fresh mesh per rate, so one point's backlog does not leak into the next.
        Bench bench(traffic, seed);
        bench.reset(routes);
        auto start = std::chrono::steady_clock::now();
        bench.run(rate, warmup, measure);
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::vector<uint32_t> lat = bench.latencies();
        std::sort(lat.begin(), lat.end());
        double mean = 0;
        for (uint32_t l : lat) mean += l;
        mean = lat.empty() ? 0 : mean / lat.size();
        uint32_t p99 = lat.empty() ? 0 : lat[std::min(lat.size() - 1, size_t(0.99 * lat.size()))];
        std::printf("{\"offered\": %.6f, \"accepted\": %.6f, \"created\": %llu, "
                    "\"delivered\": %llu, \"average_latency\": %.4f, \"p99_latency\": %u, "
                    "\"cycles\": %llu, \"seconds\": %.6f, \"digest\": \"%016llx\"}\n",
                    rate, double(bench.delivered()) / NODES / measure,
                    (unsigned long long)bench.created(), (unsigned long long)bench.delivered(),
                    mean, p99, (unsigned long long)(warmup + measure), seconds,
                    (unsigned long long)bench.digest());
        std::fflush(stdout);
    }
    return 0;
}
