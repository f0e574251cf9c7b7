#pragma once
// Writes that cannot be half done.
//
// write_file_atomically(path, bytes) writes the bytes to a new temporary file in path's folder
// (".<name>.tmp-<pid>-<n>", created exclusively), flushes it to the disk (fsync), closes it and
// renames it over path (then flushes the folder). rename(2) replaces a name in one step, so a
// reader of path sees the old file or the new one, never a part of either: a run killed or
// interrupted mid-write, a full disk or a failed write leaves path as it was. On an error the
// temporary file is removed and earlyexit::error names path and the errno's text; a process
// killed mid-write may leave its temporary file behind (never read: no reader opens those names).
// Every file the library writes (traces, result JSON, plot data and scripts, learned policy
// state, frequency tables) goes through here.
//
// The system calls go through a file layer, a template parameter (like dvfs::real_files), so
// tests can make them fail: atomic_file_ops is the real one. Without POSIX a portable stand-in
// (std::ofstream and std::filesystem::rename) takes its place.

#include <atomic>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "error.hpp"

#if defined(__unix__) || defined(__APPLE__)
#define EARLYEXIT_POSIX_ATOMIC_FILE 1
#include <fcntl.h>
#include <unistd.h>
#else
#include <fstream>
#endif

namespace earlyexit {

/// A file layer for write_file_atomically: each call returns 0 or the errno why it failed.
///   create(path, fd)        create a new file (exclusive: never an existing one), mode 0666 less
///                           the umask, open for writing; fd its handle
///   write(fd, data, size, written)  write some of the bytes (written: how many; 0 and no error
///                           only for size 0)
///   sync(fd)                flush the file's data to the disk;  close(fd)
///   rename(from, to)        replace `to` with `from` in one step;  remove(path)
///   sync_folder(folder)     flush the folder's entries (best effort: its errors are ignored)
template <class F>
concept atomic_file_layer = requires(const F& f, const std::filesystem::path& p, int fd, const char* data,
                                     std::size_t size, std::size_t& written, int& out_fd) {
    { f.create(p, out_fd) } -> std::same_as<int>;
    { f.write(fd, data, size, written) } -> std::same_as<int>;
    { f.sync(fd) } -> std::same_as<int>;
    { f.close(fd) } -> std::same_as<int>;
    { f.rename(p, p) } -> std::same_as<int>;
    { f.remove(p) } -> std::same_as<int>;
    { f.sync_folder(p) } -> std::same_as<int>;
};

/// The real file layer: POSIX calls, the kernel's errno.
struct atomic_file_ops {
#ifdef EARLYEXIT_POSIX_ATOMIC_FILE
    [[nodiscard]] int create(const std::filesystem::path& path, int& fd) const {
        do {
            fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        } while (fd < 0 && errno == EINTR);
        return fd < 0 ? errno : 0;
    }
    [[nodiscard]] int write(int fd, const char* data, std::size_t size, std::size_t& written) const {
        written = 0;
        for (;;) {
            const ssize_t n = ::write(fd, data, size);
            if (n >= 0) {
                written = static_cast<std::size_t>(n);
                return n == 0 && size != 0 ? EIO : 0;
            }
            if (errno != EINTR) return errno;
        }
    }
    [[nodiscard]] int sync(int fd) const { return ::fsync(fd) == 0 ? 0 : errno; }
    [[nodiscard]] int close(int fd) const { return ::close(fd) == 0 ? 0 : errno; }
    [[nodiscard]] int rename(const std::filesystem::path& from, const std::filesystem::path& to) const {
        return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
    }
    [[nodiscard]] int remove(const std::filesystem::path& path) const { return ::unlink(path.c_str()) == 0 ? 0 : errno; }
    [[nodiscard]] int sync_folder(const std::filesystem::path& folder) const {
        const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return errno;
        const int rc = ::fsync(fd) == 0 ? 0 : errno;
        ::close(fd);
        return rc;
    }
#else
    // The portable stand-in: one open stream at a time per layer object is all the writer needs.
    mutable std::ofstream out_;
    [[nodiscard]] int create(const std::filesystem::path& path, int& fd) const {
        std::error_code ec;
        if (std::filesystem::exists(path, ec)) return EEXIST;
        out_.open(path, std::ios::binary | std::ios::trunc);
        fd = 0;
        return out_ ? 0 : EACCES;
    }
    [[nodiscard]] int write(int, const char* data, std::size_t size, std::size_t& written) const {
        out_.write(data, static_cast<std::streamsize>(size));
        written = out_ ? size : 0;
        return out_ ? 0 : EIO;
    }
    [[nodiscard]] int sync(int) const { return out_.flush() ? 0 : EIO; }
    [[nodiscard]] int close(int) const {
        out_.close();
        return out_ ? 0 : EIO;
    }
    [[nodiscard]] int rename(const std::filesystem::path& from, const std::filesystem::path& to) const {
        std::error_code ec;
        std::filesystem::rename(from, to, ec);
        return ec ? ec.value() : 0;
    }
    [[nodiscard]] int remove(const std::filesystem::path& path) const {
        std::error_code ec;
        return std::filesystem::remove(path, ec) ? 0 : ENOENT;
    }
    [[nodiscard]] int sync_folder(const std::filesystem::path&) const { return 0; }
#endif
};
static_assert(atomic_file_layer<atomic_file_ops>);

namespace detail {

/// "<folder>/.<name>.tmp-<pid>-<n>": unique within this process (n counts), and across
/// processes writing the same folder (pid).
[[nodiscard]] inline std::filesystem::path temporary_sibling(const std::filesystem::path& path) {
    static std::atomic<unsigned long> counter{0};
#ifdef EARLYEXIT_POSIX_ATOMIC_FILE
    const long pid = static_cast<long>(::getpid());
#else
    const long pid = 0;
#endif
    const auto n = counter.fetch_add(1, std::memory_order_relaxed);
    return path.parent_path() / fmt::format(".{}.tmp-{}-{}", path.filename().string(), pid, n);
}

[[nodiscard]] inline std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

}  // namespace detail

/// Replaces the file `path` with the concatenation of `parts` in one step (see the top of this
/// header); the folder must exist. `what` names the caller in errors ("write_json", "npy::write",
/// ...). Throws earlyexit::error naming the path and the reason; path is then unchanged.
template <atomic_file_layer Files = atomic_file_ops>
void write_file_atomically(const std::filesystem::path& path, std::span<const std::string_view> parts,
                           std::string_view what = "write", const Files& files = {}) {
    if (path.filename().empty()) fail("{}: '{}' is not a file name", what, path.string());
    const std::filesystem::path tmp = detail::temporary_sibling(path);
    int fd = -1;
    if (const int e = files.create(tmp, fd); e != 0)
        fail("{}: cannot create a temporary file in the folder of {}: {}", what, path.string(), detail::errno_text(e));
    const auto abandon = [&](std::string_view step, int e, bool open) {
        if (open) (void)files.close(fd);
        (void)files.remove(tmp);
        fail("{}: cannot write {}: {} failed: {}", what, path.string(), step, detail::errno_text(e));
    };
    for (const std::string_view bytes : parts) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            std::size_t n = 0;
            if (const int e = files.write(fd, bytes.data() + done, bytes.size() - done, n); e != 0)
                abandon("write", e, true);
            if (n == 0) abandon("write", EIO, true);
            done += n;
        }
    }
    if (const int e = files.sync(fd); e != 0) abandon("fsync", e, true);
    if (const int e = files.close(fd); e != 0) abandon("close", e, false);
    if (const int e = files.rename(tmp, path); e != 0) abandon("rename", e, false);
    (void)files.sync_folder(path.parent_path());
}

/// The same for one piece of text or bytes.
template <atomic_file_layer Files = atomic_file_ops>
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes, std::string_view what = "write",
                           const Files& files = {}) {
    const std::string_view parts[] = {bytes};
    write_file_atomically(path, std::span<const std::string_view>(parts), what, files);
}

}  // namespace earlyexit
