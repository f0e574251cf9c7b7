#pragma once
// dvfs::restore_on_signal: puts the CPUs' governors back when a signal ends the program.
//
// A cpufreq backend restores the governor and speed it took over when it is destroyed, but
// SIGINT (Ctrl-C), SIGTERM, SIGHUP and SIGQUIT end a program without running destructors, which
// would leave the machine pinned to the last frequency. While a restore_on_signal guard lives,
// each of those signals first makes the backend's restoring writes (backend.restore_writes(),
// prepared when the guard is made; made with open/write/close, which are async-signal-safe),
// then takes the action it had before the guard (by default: the program ends, killed by that
// signal, so its exit status says so; or the program's own handler). A signal that was ignored
// (SIG_IGN, as under nohup) stays ignored. The destructor puts the previous actions back.
//
//   dvfs::cpufreq_backend backend;                 // takes the governor over
//   dvfs::restore_on_signal guard(backend);        // Ctrl-C now restores it too
//
// One guard at a time in a process (a second is an error naming the first's signals). The
// writes bypass the backend's Files policy: for backends over real files (a fake sysfs tree in
// a folder works too). POSIX only; elsewhere the guard does nothing.

#include <atomic>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "../error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#define EARLYEXIT_DVFS_POSIX_SIGNALS 1
#include <cerrno>
#include <fcntl.h>
#include <unistd.h>
#endif

namespace earlyexit::dvfs {

/// The signals a guard handles unless told otherwise.
[[nodiscard]] inline std::vector<int> default_restore_signals() {
#ifdef EARLYEXIT_DVFS_POSIX_SIGNALS
    return {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#else
    return {SIGINT, SIGTERM};
#endif
}

namespace detail {

#ifdef EARLYEXIT_DVFS_POSIX_SIGNALS
/// What the handler does, fixed before it is installed: it only reads this.
struct signal_plan {
    std::vector<std::pair<std::string, std::string>> writes;  // (path, text)
    std::vector<int> signals;                                  // handled by the guard
    std::vector<struct sigaction> previous;                    // their actions before it
};

inline std::atomic<const signal_plan*>& active_signal_plan() noexcept {
    static std::atomic<const signal_plan*> plan{nullptr};
    return plan;
}

/// The handler: the writes, the signal's previous action back, the signal again (it is blocked
/// while the handler runs, so it is delivered with that action as the handler returns).
inline void restore_and_reraise(int sig) noexcept {
    const int saved_errno = errno;
    if (const signal_plan* p = active_signal_plan().load(std::memory_order_acquire)) {
        for (const auto& [path, text] : p->writes) {
            const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
            if (fd < 0) continue;
            std::size_t done = 0;
            while (done < text.size()) {
                const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
                if (n > 0) done += static_cast<std::size_t>(n);
                else if (n < 0 && errno == EINTR) continue;
                else break;
            }
            ::close(fd);
        }
        for (std::size_t i = 0; i < p->signals.size(); ++i)
            if (p->signals[i] == sig) ::sigaction(sig, &p->previous[i], nullptr);
    }
    errno = saved_errno;
    ::raise(sig);
}

extern "C" inline void earlyexit_dvfs_restore_handler(int sig) { restore_and_reraise(sig); }
#endif

}  // namespace detail

/// See the top of this header. Not copyable, not movable.
class restore_on_signal {
public:
    /// Prepares the backend's restoring writes and installs the handlers. Throws earlyexit::error
    /// when another guard is active or a signal cannot be handled.
    template <class Backend>
        requires requires(const Backend& b) { b.restore_writes(); }
    explicit restore_on_signal(const Backend& backend, std::vector<int> signals = default_restore_signals()) {
#ifdef EARLYEXIT_DVFS_POSIX_SIGNALS
        auto plan = std::make_unique<detail::signal_plan>();
        for (const auto& [path, text] : backend.restore_writes()) plan->writes.emplace_back(path.string(), text);
        plan->signals = std::move(signals);
        plan->previous.resize(plan->signals.size());
        const detail::signal_plan* none = nullptr;
        if (!detail::active_signal_plan().compare_exchange_strong(none, plan.get(), std::memory_order_acq_rel))
            fail("restore_on_signal: another guard is active (signals {}); one at a time",
                 fmt::join(none->signals, ", "));
        struct sigaction action {};
        action.sa_handler = &detail::earlyexit_dvfs_restore_handler;
        sigemptyset(&action.sa_mask);
        for (const int s : plan->signals) sigaddset(&action.sa_mask, s);  // one handler at a time
        action.sa_flags = SA_RESTART;
        for (std::size_t i = 0; i < plan->signals.size(); ++i) {
            const int s = plan->signals[i];
            struct sigaction current {};
            if (::sigaction(s, nullptr, &current) != 0) {
                uninstall(*plan, i);
                fail("restore_on_signal: cannot handle signal {}", s);
            }
            plan->previous[i] = current;
            if (current.sa_handler == SIG_IGN) continue;  // ignored stays ignored
            if (::sigaction(s, &action, nullptr) != 0) {
                uninstall(*plan, i);
                fail("restore_on_signal: cannot handle signal {}", s);
            }
        }
        plan_ = std::move(plan);
#else
        (void)backend;
        (void)signals;
#endif
    }

    restore_on_signal(const restore_on_signal&) = delete;
    restore_on_signal& operator=(const restore_on_signal&) = delete;

    /// Puts the signals' previous actions back.
    ~restore_on_signal() {
#ifdef EARLYEXIT_DVFS_POSIX_SIGNALS
        if (plan_) uninstall(*plan_, plan_->signals.size());
#endif
    }

    /// The files the handler writes, in order (for messages and tests).
    [[nodiscard]] std::vector<std::filesystem::path> files() const {
        std::vector<std::filesystem::path> out;
#ifdef EARLYEXIT_DVFS_POSIX_SIGNALS
        if (plan_)
            for (const auto& w : plan_->writes) out.emplace_back(w.first);
#endif
        return out;
    }

private:
#ifdef EARLYEXIT_DVFS_POSIX_SIGNALS
    /// The first n signals' previous actions back, then the plan withdrawn.
    static void uninstall(const detail::signal_plan& p, std::size_t n) noexcept {
        for (std::size_t i = 0; i < n; ++i)
            if (p.previous[i].sa_handler != SIG_IGN) ::sigaction(p.signals[i], &p.previous[i], nullptr);
        detail::active_signal_plan().store(nullptr, std::memory_order_release);
    }
    std::unique_ptr<detail::signal_plan> plan_;
#endif
};

}  // namespace earlyexit::dvfs
