// Threads that share each cycle's independent jobs: the tiles (or the dies) the wafer
// harness clocks in that cycle, each of which touches only its own model.
//
// A crew lives for one run of many cycles (wafer.cpp makes one per wafer_step), so no
// thread spins while Python has the wafer.  Each round, the caller publishes the jobs
// and takes jobs itself; the helpers take the rest from a shared counter, so a cycle
// whose busy tiles sit together is still shared.  The caller returns only when every
// helper has finished the round and checked in, so the next round's jobs cannot meet a
// helper still in this one.  A round of fewer than two jobs the caller does alone.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace tessera {

class Crew {
  public:
    // `threads` in all, the caller's included.
    explicit Crew(int threads) {
        for (int k = 1; k < threads; ++k) helpers_.emplace_back([this] { help(); });
    }
    ~Crew() {
        stop_.store(true, std::memory_order_release);
        for (std::thread& helper : helpers_) helper.join();
    }
    Crew(const Crew&) = delete;
    Crew& operator=(const Crew&) = delete;

    // job(k) for every k < n, shared among the threads.
    template <class Job>
    void run(size_t n, Job& job) {
        if (helpers_.empty() || n < 2) {
            for (size_t k = 0; k < n; ++k) job(k);
            return;
        }
        job_ = &job;
        call_ = [](void* context, size_t k) { (*static_cast<Job*>(context))(k); };
        count_ = n;
        next_.store(0, std::memory_order_relaxed);
        checked_in_.store(0, std::memory_order_relaxed);
        round_.fetch_add(1, std::memory_order_release);     // publishes the above
        work();
        const size_t helpers = helpers_.size();
        for (int spins = 0; checked_in_.load(std::memory_order_acquire) < helpers; ++spins)
            relax(spins);
    }

  private:
    void work() {
        for (size_t k; (k = next_.fetch_add(1, std::memory_order_relaxed)) < count_;)
            call_(job_, k);
    }

    void help() {
        uint64_t seen = 0;
        for (int spins = 0; !stop_.load(std::memory_order_acquire); ++spins) {
            const uint64_t round = round_.load(std::memory_order_acquire);
            if (round == seen) { relax(spins); continue; }
            seen = round;
            spins = 0;
            work();
            checked_in_.fetch_add(1, std::memory_order_release);
        }
    }

    // Spin politely, then give the core away: the threads may outnumber the free cores.
    static void relax(int spins) {
        if (spins < 4096) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            std::this_thread::yield();
        }
    }

    std::vector<std::thread> helpers_;
    void* job_ = nullptr;
    void (*call_)(void*, size_t) = nullptr;
    size_t count_ = 0;
    std::atomic<size_t> next_{0};
    std::atomic<size_t> checked_in_{0};
    std::atomic<uint64_t> round_{0};
    std::atomic<bool> stop_{false};
};

}  // namespace tessera
