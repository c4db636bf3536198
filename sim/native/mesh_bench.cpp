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
// router_ports.h (generated from rtl/params.py and rtl/wavelet.py) also defines
// COLORS, FIRST_XY_COLOR, QUEUE_DEPTH, COLOR_SHIFT, DST_X_SHIFT and DST_Y_SHIFT.
#include "mesh.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int NODES = tessera::Mesh::nodes;
constexpr int TAGS = 1 << 16;

struct Meter {
    uint64_t created = 0, delivered = 0;
    std::vector<uint32_t> latencies;
};

class Bench {
  public:
    Bench(const std::string& traffic, uint64_t seed) : traffic_(traffic), rng_(seed) {
        for (auto& c : credits_) std::fill(std::begin(c), std::end(c), QUEUE_DEPTH);
        for (int t = TAGS - 1; t >= 0; --t) free_tags_.push_back(t);
    }
    void reset(const std::vector<tessera::Mesh::RouteWrite>& routes) { mesh_.reset(routes); }

    Meter run(double rate, uint64_t warmup, uint64_t measure) {
        Meter meter;
        std::bernoulli_distribution fire(rate);
        for (uint64_t n = 0; n < warmup + measure; ++n) {
            bool measuring = n >= warmup;
            for (int node = 0; node < NODES; ++node) {
                if (traffic_ == "broadcast" ? node % MESH_WIDTH == 0 && fire(rng_) : fire(rng_)) {
                    sources_[node].push_back(cycle_);
                    if (measuring) ++meter.created;
                }
            }
            for (int node = 0; node < NODES; ++node) drive(node);
            mesh_.tick();
            ++cycle_;
            for (int node = 0; node < NODES; ++node) collect(node, measuring, meter);
        }
        return meter;
    }

    uint64_t cycle() const { return cycle_; }

  private:
    int destination(int node) {
        int x = node % MESH_WIDTH, y = node / MESH_WIDTH;
        if (traffic_ == "transpose") return x * MESH_WIDTH + y;
        if (traffic_ == "neighbor")
            return ((y + 1) % MESH_HEIGHT) * MESH_WIDTH + (x + 1) % MESH_WIDTH;
        std::uniform_int_distribution<int> other(0, NODES - 2);
        int d = other(rng_);
        return d >= node ? d + 1 : d;  // uniform over the other nodes
    }

    void drive(int node) {
        tessera::LinkPorts& ramp = mesh_.router(node).inputs[tessera::RAMP];
        *ramp.valid = 0;
        if (sources_[node].empty()) return;
        uint64_t wavelet;
        int color;
        if (traffic_ == "broadcast") {
            color = 0;
            if (credits_[node][color] == 0) return;
            wavelet = (uint64_t(color) << COLOR_SHIFT) | (sources_[node].front() & 0xffff);
        } else {
            // Spread the source's wavelets over the XY colors that hold a credit.
            color = -1;
            for (int k = 0; k < COLORS - FIRST_XY_COLOR; ++k) {
                int c = FIRST_XY_COLOR + (next_color_[node] + k) % (COLORS - FIRST_XY_COLOR);
                if (credits_[node][c] > 0) { color = c; break; }
            }
            if (color < 0 || free_tags_.empty()) return;
            next_color_[node] = (color - FIRST_XY_COLOR + 1) % (COLORS - FIRST_XY_COLOR);
            int dst = destination(node);
            uint32_t tag = free_tags_.back();
            free_tags_.pop_back();
            born_[tag] = sources_[node].front();
            wavelet = (uint64_t(color) << COLOR_SHIFT) | (uint64_t(dst / MESH_WIDTH) << DST_Y_SHIFT)
                | (uint64_t(dst % MESH_WIDTH) << DST_X_SHIFT) | tag;
        }
        sources_[node].pop_front();
        --credits_[node][color];
        *ramp.valid = 1;
        *ramp.wavelet = wavelet;
    }

    void collect(int node, bool measuring, Meter& meter) {
        tessera::RouterModel& router = mesh_.router(node);
        tessera::LinkPorts& in = router.inputs[tessera::RAMP];
        tessera::LinkPorts& out = router.outputs[tessera::RAMP];
        if (*in.credit) ++credits_[node][*in.credit_color];
        // The ramp consumer takes every wavelet at once and hands the credit straight back.
        *out.credit = *out.valid;
        if (!*out.valid) return;
        uint64_t wavelet = *out.wavelet;
        int color = int(wavelet >> COLOR_SHIFT);
        *out.credit_color = color;
        uint32_t tag = wavelet & 0xffff;
        uint64_t born;
        if (traffic_ == "broadcast") {
            born = cycle_ - ((cycle_ - tag) & 0xffff);
        } else {
            born = born_[tag];
            free_tags_.push_back(tag);
        }
        if (measuring) {
            ++meter.delivered;
            meter.latencies.push_back(uint32_t(cycle_ - born));
        }
    }

    std::string traffic_;
    std::mt19937_64 rng_;
    tessera::Mesh mesh_;
    int credits_[NODES][COLORS];
    int next_color_[NODES] = {};
    std::deque<uint64_t> sources_[NODES];
    std::vector<uint32_t> free_tags_;
    uint64_t born_[TAGS];
    uint64_t cycle_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 7) {
        std::fprintf(stderr, "usage: %s TRAFFIC ROUTES WARMUP MEASURE SEED RATE...\n", argv[0]);
        return 2;
    }
    std::string traffic = argv[1];
    std::vector<tessera::Mesh::RouteWrite> routes;
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
        Bench bench(traffic, seed + i);
        bench.reset(routes);
        auto start = std::chrono::steady_clock::now();
        Meter meter = bench.run(rate, warmup, measure);
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::vector<uint32_t>& lat = meter.latencies;
        std::sort(lat.begin(), lat.end());
        double mean = 0;
        for (uint32_t l : lat) mean += l;
        mean = lat.empty() ? 0 : mean / lat.size();
        uint32_t p99 = lat.empty() ? 0 : lat[std::min(lat.size() - 1, size_t(0.99 * lat.size()))];
        std::printf("{\"offered\": %.6f, \"accepted\": %.6f, \"created\": %llu, "
                    "\"delivered\": %llu, \"average_latency\": %.4f, \"p99_latency\": %u, "
                    "\"cycles\": %llu, \"seconds\": %.6f}\n",
                    rate, double(meter.delivered) / NODES / measure,
                    (unsigned long long)meter.created, (unsigned long long)meter.delivered,
                    mean, p99, (unsigned long long)(warmup + measure), seconds);
        std::fflush(stdout);
    }
    return 0;
}
