#pragma once
// image_dataset: labelled images for the demos, listed eagerly at open and decoded one at a time
// by load(i), from an image folder, an uncompressed tar of one, or the CIFAR-10 binary format.
// open_dataset() picks the reader from what the path is.
//
// A folder or tar is read in one of two layouts:
//   - class folders, `<class>/<file>` (torchvision's ImageFolder): the first path component is
//     the class; classes are the folder names sorted, or indices into dataset_options::classes;
//   - flat files labelled by a list, `<file> <label>` per line (ImageNet's val.txt style), given
//     as dataset_options::labels; only the listed files are in the dataset.
// Without either (a flat folder, no list) the images are unlabelled (label -1).
//
// A tar is indexed by offsets at open (headers only) and each load(i) reads its one member
// from the file, so opening a tar costs one 512-byte read per member and memory per member
// name, never the whole archive.

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <earlyexit/error.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join

#include "common/image.hpp"

namespace earlyexit::demo {

/// CIFAR-10's class names in label order (label 0 = airplane ... 9 = truck).
inline std::vector<std::string> cifar10_classes() {
    return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

/// How open_dataset and the image_dataset factories label images.
struct dataset_options {
    /// Class names in label order. Class folders: a folder's name maps to its index here (an
    /// unknown folder is an error); empty: the folders, sorted by name, are the classes.
    /// Label list: labels must lie in [0, classes.size()) when not empty.
    std::vector<std::string> classes = {};
    /// A `<file> <label>` list (one per line, blank lines allowed, `<file>` relative to the
    /// folder or tar root). Empty: the folder/tar uses the class-folder layout, or is unlabelled.
    std::filesystem::path labels = {};
};

namespace detail {

/// One image of a dataset: where it is (a tar or CIFAR-10 binary: byte offset and size in the
/// file; a folder: `name` under the root) and its label (-1: unknown).
struct dataset_entry {
    std::string name;
    int label = -1;
    std::uint64_t offset = 0, size = 0;
};

/// A regular file found in a folder or tar, by its '/'-separated path relative to the root.
struct dataset_member {
    std::string name;
    std::uint64_t offset = 0, size = 0;
};

/// File extensions (lower case) that count as images in the class-folder and unlabelled layouts:
/// the formats decode_image reads (image.hpp: JPEG, PNG, BMP, binary PNM), under torchvision's names.
inline bool is_image_name(std::string_view name) {
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || name.find('/', dot) != std::string_view::npos) return false;
    std::string ext(name.substr(dot + 1));
    for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    static constexpr std::array<std::string_view, 7> known = {"jpg", "jpeg", "png", "bmp", "ppm", "pgm", "pnm"};
    return std::find(known.begin(), known.end(), ext) != known.end();
}

/// Hidden paths (any component starting with '.') are skipped everywhere: they are editor and
/// OS droppings (.DS_Store, macOS's "._x.jpg" resource forks in tars), never dataset images.
inline bool is_hidden(std::string_view path) {
    for (std::size_t begin = 0; begin <= path.size();) {
        const auto end = std::min(path.find('/', begin), path.size());
        if (end > begin && path[begin] == '.') return true;
        begin = end + 1;
    }
    return false;
}

inline std::vector<dataset_member> list_folder(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::vector<dataset_member> members;
    try {
        for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
             it != fs::recursive_directory_iterator(); ++it) {
            const std::string rel = it->path().lexically_relative(dir).generic_string();
            if (is_hidden(it->path().filename().string())) {
                if (it->is_directory()) it.disable_recursion_pending();
                continue;
            }
            if (it->is_regular_file()) members.push_back({rel});
        }
    } catch (const fs::filesystem_error& e) {
        earlyexit::fail("{}: cannot list the folder: {}", dir.string(), e.what());
    }
    std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return members;
}

/// An octal tar number field: optional leading spaces, octal digits, then NULs/spaces to the end.
/// Returns false for anything else (base-256 GNU numbers included: no member here needs 8 GiB).
inline bool parse_tar_octal(std::span<const unsigned char> field, std::uint64_t& value) {
    std::size_t i = 0;
    while (i < field.size() && field[i] == ' ') ++i;
    const std::size_t first_digit = i;
    value = 0;
    for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i) value = value * 8 + (field[i] - '0');
    if (i == first_digit) return false;
    for (; i < field.size(); ++i)
        if (field[i] != ' ' && field[i] != '\0') return false;
    return true;
}

/// A NUL-terminated (or field-filling) string field.
inline std::string tar_string(std::span<const unsigned char> field) {
    const auto end = std::find(field.begin(), field.end(), '\0');
    return {field.begin(), end};
}

/// Applies the records of a pax extended header ("<length> <key>=<value>\n" each) that matter
/// here, path and size, to the next member; other keys (mtime, uid, ...) are ignored.
inline void apply_pax_records(std::string_view data, std::string& path, std::uint64_t& size, bool& has_size,
                              std::string_view where) {
    while (!data.empty() && data.front() != '\0') {
        std::size_t length = 0;
        const auto [p, ec] = std::from_chars(data.data(), data.data() + data.size(), length);
        const auto digits = static_cast<std::size_t>(p - data.data());
        if (ec != std::errc() || length <= digits + 1 || length > data.size() || data[digits] != ' ' ||
            data[length - 1] != '\n')
            earlyexit::fail("{}: malformed pax record '{}'", where, data.substr(0, 60));
        const std::string_view record = data.substr(digits + 1, length - digits - 2);
        const auto eq = record.find('=');
        if (eq == std::string_view::npos) earlyexit::fail("{}: malformed pax record '{}'", where, record);
        const auto key = record.substr(0, eq), value = record.substr(eq + 1);
        if (key == "path") {
            // A NUL would cut the name short in every message and path made from it.
            if (const auto nul = value.find('\0'); nul != std::string_view::npos)
                earlyexit::fail("{}: pax path '{}' holds a NUL byte at {}", where, value.substr(0, nul), nul);
            path = value;
        }
        if (key == "size") {
            const auto [q, ec2] = std::from_chars(value.data(), value.data() + value.size(), size);
            if (ec2 != std::errc() || q != value.data() + value.size())
                earlyexit::fail("{}: malformed pax size '{}'", where, value);
            has_size = true;
        }
        data.remove_prefix(length);
    }
}

/// The largest pax extended header or GNU long name list_tar reads: 1 MiB. They hold a path and a
/// few numbers, so a larger one is a corrupt size field, refused before its buffer is allocated
/// (in an archive of many gigabytes it could otherwise claim gigabytes).
inline constexpr std::uint64_t tar_max_extended_header = std::uint64_t{1} << 20;

/// Indexes an uncompressed POSIX (ustar, pax or GNU) tar: every regular file's name, data offset
/// and size. Checks each header's checksum, that every member's data lies inside the file and
/// that the archive ends with its two zero blocks, so a truncated tar is an error here, at open.
inline std::vector<dataset_member> list_tar(const std::filesystem::path& tar) {
    using earlyexit::fail;
    constexpr std::uint64_t block = 512;
    const std::string what = fmt::format("tar {}", tar.string());
    std::error_code ec;
    const std::uint64_t file_size = std::filesystem::file_size(tar, ec);
    if (ec) fail("{}: cannot open: {}", what, ec.message());
    errno = 0;
    std::ifstream in(tar, std::ios::binary);
    if (!in) fail("{}: cannot open: {}", what, errno ? std::generic_category().message(errno) : "unknown error");
    const auto read_at = [&](std::uint64_t offset, void* out, std::uint64_t n) {
        in.seekg(static_cast<std::streamoff>(offset));
        if (!in.read(static_cast<char*>(out), static_cast<std::streamsize>(n)))
            fail("{}: read error at offset {} (was it modified while being read?)", what, offset);
    };

    std::vector<dataset_member> members;
    std::array<unsigned char, block> header{};
    const auto field = [&](std::size_t at, std::size_t length) { return std::span(header).subspan(at, length); };
    const auto all_zero = [&] { return std::all_of(header.begin(), header.end(), [](unsigned char b) { return b == 0; }); };
    std::string next_path;  // from a pax 'x' or GNU 'L' header: the name of the member that follows
    std::uint64_t next_size = 0;
    bool has_next_size = false;
    for (std::uint64_t offset = 0;;) {
        if (file_size < offset + block)
            fail("{}: truncated: the file ends at byte {}, inside or before the header at offset {} "
                 "(no end-of-archive blocks)", what, file_size, offset);
        read_at(offset, header.data(), block);
        if (all_zero()) {
            if (file_size < offset + 2 * block)
                fail("{}: truncated: the file ends at byte {} after one of the two end-of-archive zero blocks", what,
                     file_size);
            read_at(offset + block, header.data(), block);
            if (!all_zero()) fail("{}: corrupt: a lone zero block at offset {} is followed by data", what, offset);
            break;
        }

        std::uint64_t stored = 0;
        std::uint64_t sum = 8 * ' ';  // the checksum field itself counts as spaces
        for (std::size_t i = 0; i < block; ++i) sum += (i >= 148 && i < 156) ? 0u : header[i];
        if (!parse_tar_octal(field(148, 8), stored) || stored != sum) {
            if (offset == 0 && header[0] == 0x1f && header[1] == 0x8b)
                fail("{}: gzip-compressed; only uncompressed tars are read (gunzip it first)", what);
            fail("{}: header at offset {}: bad checksum (stored '{}', computed {}): not a tar file, or corrupt", what,
                 offset, tar_string(field(148, 8)), sum);
        }
        const std::string magic = tar_string(field(257, 6));
        if (magic != "ustar" && magic != "ustar ")
            fail("{}: header at offset {}: magic '{}' is not ustar (pre-POSIX tars are not supported)", what, offset,
                 magic);

        std::string name = next_path.empty() ? tar_string(field(0, 100)) : next_path;
        if (next_path.empty() && magic == "ustar") {  // GNU tars use the prefix field for other things
            const std::string prefix = tar_string(field(345, 155));
            if (!prefix.empty()) name = prefix + "/" + name;
        }
        std::uint64_t size = 0;
        if (!parse_tar_octal(field(124, 12), size))
            fail("{}: member '{}' at offset {}: size field '{}' is not an octal number", what, name, offset,
                 tar_string(field(124, 12)));
        if (has_next_size) size = next_size;
        const std::uint64_t data = offset + block;
        if (size > file_size - data)
            fail("{}: truncated: member '{}' needs {} bytes at offset {}, the file ends at byte {}", what, name, size,
                 data, file_size);
        const auto where = [&] { return fmt::format("{}: member '{}' at offset {}", what, name, offset); };
        next_path.clear();
        next_size = 0;
        has_next_size = false;

        switch (const char type = static_cast<char>(header[156])) {
        case '0':
        case '\0':
        case '7':  // contiguous file: a regular file to every reader but a few old Unixes
            while (name.starts_with("./")) name.erase(0, 2);
            if (!is_hidden(name)) members.push_back({name, data, size});
            break;
        case '5':  // directory
        case 'g':  // pax global header (git archive writes the commit id there)
            break;
        case 'x':
        case 'L': {  // pax extended header / GNU long name: they describe the next member
            if (size > tar_max_extended_header)
                fail("{}: {} of {} bytes is more than the {} read (a corrupt size?)", where(),
                     type == 'L' ? "GNU long name" : "pax header", size, tar_max_extended_header);
            std::string text(static_cast<std::size_t>(size), '\0');
            read_at(data, text.data(), size);
            if (type == 'L') next_path = text.substr(0, text.find('\0'));
            else apply_pax_records(text, next_path, next_size, has_next_size, where());
            break;
        }
        default: fail("{}: type '{}' is not supported (only regular files and directories are)", where(), type);
        }
        offset = data + (size + block - 1) / block * block;
    }

    std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    const auto dup = std::adjacent_find(members.begin(), members.end(),
                                        [](const auto& a, const auto& b) { return a.name == b.name; });
    if (dup != members.end()) fail("{}: member '{}' appears more than once", what, dup->name);
    return members;
}

/// A `<file> <label>` list: entries (name, label), in file order, checked line by line.
struct labelled_name {
    std::string name;
    int label;
    std::size_t line;
};

inline std::vector<labelled_name> read_label_list(const std::filesystem::path& file, std::size_t classes) {
    using earlyexit::fail;
    const std::vector<std::uint8_t> bytes = read_file_bytes(file);
    const auto is_space = [](char ch) { return std::isspace(static_cast<unsigned char>(ch)) != 0; };
    const auto trim = [&](std::string_view s) {
        while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
        while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
        return s;
    };
    std::vector<labelled_name> list;
    std::string_view rest(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    for (std::size_t line = 1; !rest.empty(); ++line) {
        const auto end = std::min(rest.find('\n'), rest.size());
        std::string_view text = rest.substr(0, end);
        rest.remove_prefix(std::min(end + 1, rest.size()));
        if (text.ends_with('\r')) text.remove_suffix(1);
        const std::string_view trimmed = trim(text);
        if (trimmed.empty()) continue;
        // The label is the last word, so file names may hold spaces.
        const auto gap = trimmed.find_last_of(" \t\v\f");
        const auto bad = [&] { fail("{}:{}: expected '<file> <label>', got '{}'", file.string(), line, text); };
        if (gap == std::string_view::npos) bad();
        const std::string_view name = trim(trimmed.substr(0, gap)), label_text = trimmed.substr(gap + 1);
        int label = -1;
        const auto [p, ec] = std::from_chars(label_text.data(), label_text.data() + label_text.size(), label);
        if (ec != std::errc() || p != label_text.data() + label_text.size() || label < 0) bad();
        if (classes != 0 && static_cast<std::size_t>(label) >= classes)
            fail("{}:{}: label {} is out of range [0, {}) in '{}'", file.string(), line, label, classes, text);
        list.push_back({std::string(name), label, line});
    }
    return list;
}

/// Labels the members of a folder or tar (`source` names it in errors) by the options, in the
/// layouts the file comment describes; returns the entries sorted by name and the class names.
inline std::pair<std::vector<dataset_entry>, std::vector<std::string>> label_members(
    const std::vector<dataset_member>& members, const dataset_options& options, const std::string& source) {
    using earlyexit::fail;
    std::vector<dataset_entry> entries;
    std::vector<std::string> classes = options.classes;
    const auto to_entry = [](const dataset_member& m, int label) { return dataset_entry{m.name, label, m.offset, m.size}; };

    if (!options.labels.empty()) {
        std::map<std::string_view, std::size_t> first_line;
        for (const auto& item : read_label_list(options.labels, classes.size())) {
            const auto [seen, fresh] = first_line.emplace(item.name, item.line);
            if (!fresh)
                fail("{}:{}: '{}' is listed twice (first at line {})", options.labels.string(), item.line, item.name,
                     seen->second);
            const auto it = std::lower_bound(members.begin(), members.end(), item.name,
                                             [](const dataset_member& m, const std::string& n) { return m.name < n; });
            if (it == members.end() || it->name != item.name)
                fail("{}:{}: listed file '{}' is not in {}", options.labels.string(), item.line, item.name, source);
            entries.push_back(to_entry(*it, item.label));
        }
        std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
        if (entries.empty()) fail("{}: the labels list {} names no files", source, options.labels.string());
        return {std::move(entries), std::move(classes)};
    }

    std::vector<const dataset_member*> images;
    for (const auto& m : members)
        if (is_image_name(m.name)) images.push_back(&m);
    if (images.empty())
        fail("{}: no images (files ending .jpg .jpeg .png .bmp .ppm .pgm .pnm, any case)", source);
    const bool class_folders = std::any_of(images.begin(), images.end(),
                                           [](const auto* m) { return m->name.find('/') != std::string::npos; });
    if (!class_folders) {
        for (const auto* m : images) entries.push_back(to_entry(*m, -1));
        return {std::move(entries), std::move(classes)};
    }

    const auto class_of = [](const dataset_member& m) { return std::string_view(m.name).substr(0, m.name.find('/')); };
    for (const auto* m : images)
        if (m->name.find('/') == std::string::npos)
            fail("{}: image '{}' is outside the class folders (the layout is <class>/<file>)", source, m->name);
    if (classes.empty()) {
        // Paths sort "cat-x/..." before "cat/...", so class names are sorted on their own.
        for (const auto* m : images) classes.emplace_back(class_of(*m));
        std::sort(classes.begin(), classes.end());
        classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
    }
    std::map<std::string_view, int> index;
    for (std::size_t c = 0; c < classes.size(); ++c) index.emplace(classes[c], static_cast<int>(c));
    for (const auto* m : images) {
        const auto it = index.find(class_of(*m));
        if (it == index.end())
            fail("{}: class folder '{}' is not one of the {} classes ({})", source, class_of(*m), classes.size(),
                 fmt::join(classes, ", "));
        entries.push_back(to_entry(*m, it->second));
    }
    return {std::move(entries), std::move(classes)};
}

}  // namespace detail

/// A labelled image dataset: size(), label(i) and name(i) are O(1) lookups in what open listed;
/// load(i) reads and decodes image i (a few file reads plus the decode; thread-safe, no shared
/// state). Order is deterministic: entries sorted by name (CIFAR-10 binary: record order).
/// Indices out of range throw earlyexit::error.
class image_dataset {
public:
    enum class source_kind { folder, tar, cifar10_binary };

    /// A folder of images (see the file comment for the layouts). Hidden files are skipped;
    /// errors: no images, an unknown class folder, a bad or dangling label list.
    static image_dataset from_folder(const std::filesystem::path& dir, const dataset_options& options = {}) {
        const auto source = fmt::format("folder {}", dir.string());
        auto [entries, classes] = detail::label_members(detail::list_folder(dir), options, source);
        return {dir, source_kind::folder, std::move(entries), std::move(classes)};
    }

    /// An uncompressed tar of a folder (same layouts as from_folder), indexed at open.
    static image_dataset from_tar(const std::filesystem::path& tar, const dataset_options& options = {}) {
        const auto source = fmt::format("tar {}", tar.string());
        auto [entries, classes] = detail::label_members(detail::list_tar(tar), options, source);
        return {tar, source_kind::tar, std::move(entries), std::move(classes)};
    }

    /// The official CIFAR-10 binary format (test_batch.bin, data_batch_N.bin): records of one
    /// label byte (0..9) then the 32x32 red, green and blue planes. Reads the labels at open.
    /// options.classes, when given, must hold 10 names; a label list is an error.
    static image_dataset from_cifar10_binary(const std::filesystem::path& file, const dataset_options& options = {}) {
        using earlyexit::fail;
        const std::string what = fmt::format("cifar10 binary {}", file.string());
        if (!options.labels.empty())
            fail("{}: a labels list ({}) only applies to folders and tars", what, options.labels.string());
        if (!options.classes.empty() && options.classes.size() != 10)
            fail("{}: {} class names given, CIFAR-10 has 10", what, options.classes.size());
        const std::vector<std::uint8_t> bytes = detail::read_file_bytes(file);
        if (bytes.empty() || bytes.size() % cifar10_record != 0)
            fail("{}: size {} bytes is not a positive multiple of {}", what, bytes.size(), cifar10_record);
        std::vector<detail::dataset_entry> entries(bytes.size() / cifar10_record);
        const std::string stem = file.filename().string();
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const std::uint8_t label = bytes[i * cifar10_record];
            if (label > 9) fail("{}: record {} has label {}, expected 0..9", what, i, label);
            entries[i] = {fmt::format("{}#{}", stem, i), label, i * cifar10_record, cifar10_record};
        }
        return {file, source_kind::cifar10_binary, std::move(entries),
                options.classes.empty() ? cifar10_classes() : options.classes};
    }

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    /// Image i's label, or -1 when the dataset is unlabelled.
    [[nodiscard]] int label(std::size_t i) const { return at(i).label; }
    /// Image i's path relative to the folder or tar root ("cat/0001.jpg"); CIFAR-10 binary:
    /// "<file name>#<record>".
    [[nodiscard]] std::string_view name(std::size_t i) const { return at(i).name; }
    /// Class names in label order (may be empty: unlabelled, or a label list without names).
    [[nodiscard]] std::span<const std::string> classes() const noexcept { return classes_; }
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    [[nodiscard]] source_kind kind() const noexcept { return kind_; }

    /// Reads and decodes image i.
    [[nodiscard]] image_u8 load(std::size_t i) const {
        const auto& e = at(i);
        if (kind_ == source_kind::folder) return read_image(path_ / e.name);
        const std::vector<std::uint8_t> bytes = read_span(e);
        if (kind_ == source_kind::tar) return decode_image(bytes, fmt::format("{}:{}", path_.string(), e.name));
        // A CIFAR-10 record: the label byte, then planes R, G, B of 32x32.
        constexpr int plane = 32 * 32;
        image_u8 image(32, 32);
        for (int p = 0; p < plane; ++p)
            for (int c = 0; c < image_u8::channels; ++c)
                image.pixels[static_cast<std::size_t>(p * image_u8::channels + c)] =
                    bytes[static_cast<std::size_t>(1 + c * plane + p)];
        return image;
    }

private:
    static constexpr std::uint64_t cifar10_record = 1 + 3 * 32 * 32;

    image_dataset(std::filesystem::path path, source_kind kind, std::vector<detail::dataset_entry> entries,
                  std::vector<std::string> classes)
        : path_(std::move(path)), kind_(kind), entries_(std::move(entries)), classes_(std::move(classes)) {}

    [[nodiscard]] const detail::dataset_entry& at(std::size_t i) const {
        if (i >= entries_.size())
            earlyexit::fail("dataset {}: index {} is out of range (size {})", path_.string(), i, entries_.size());
        return entries_[i];
    }

    /// Entry e's bytes, read from the file by offset (a fresh stream per call: thread-safe).
    [[nodiscard]] std::vector<std::uint8_t> read_span(const detail::dataset_entry& e) const {
        std::ifstream in(path_, std::ios::binary);
        std::vector<std::uint8_t> bytes(static_cast<std::size_t>(e.size));
        in.seekg(static_cast<std::streamoff>(e.offset));
        if (!in || !in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
            earlyexit::fail("{}: cannot read '{}' ({} bytes at offset {}): was the file modified or removed?",
                                    path_.string(), e.name, e.size, e.offset);
        return bytes;
    }

    std::filesystem::path path_;
    source_kind kind_;
    std::vector<detail::dataset_entry> entries_;
    std::vector<std::string> classes_;
};

/// Opens a dataset by what `path` is: a directory (image_dataset::from_folder), a *.tar file
/// (from_tar) or a *.bin file (from_cifar10_binary); extensions are matched in any case.
inline image_dataset open_dataset(const std::filesystem::path& path, const dataset_options& options = {}) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (!fs::exists(status)) earlyexit::fail("dataset {}: no such file or directory", path.string());
    if (fs::is_directory(status)) return image_dataset::from_folder(path, options);
    std::string ext = path.extension().string();
    for (char& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (fs::is_regular_file(status) && ext == ".tar") return image_dataset::from_tar(path, options);
    if (fs::is_regular_file(status) && ext == ".bin") return image_dataset::from_cifar10_binary(path, options);
    earlyexit::fail("dataset {}: unknown kind: expected a directory, a .tar file or a CIFAR-10 .bin file",
                            path.string());
}

}  // namespace earlyexit::demo
