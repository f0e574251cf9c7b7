#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/datasets.hpp"
#include "error_text.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using earlyexit::demo::dataset_options;
using earlyexit::demo::image_dataset;
using earlyexit::demo::open_dataset;
using earlyexit_test::what_of;
using Catch::Matchers::Contains;

namespace {

using earlyexit_test::temp_dir;

void spit(const fs::path& file, const std::string& bytes) {
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

using rgb = std::array<std::uint8_t, 3>;

/// A 2x2 24-bit BMP of one colour: the colour tells the tests which file an image came from.
std::string bmp(rgb c) {
    constexpr int w = 2, h = 2, row = 8;  // 2 pixels * 3 bytes, padded to 4
    std::string out = "BM";
    const auto u32 = [&out](std::uint32_t v) {
        for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
    };
    const auto u16 = [&out](std::uint16_t v) {
        out += static_cast<char>(v & 0xff);
        out += static_cast<char>(v >> 8);
    };
    u32(54 + row * h), u16(0), u16(0), u32(54);                   // file header
    u32(40), u32(w), u32(h), u16(1), u16(24), u32(0), u32(row * h);  // info header: bottom-up BI_RGB
    u32(2835), u32(2835), u32(0), u32(0);
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) out += {static_cast<char>(c[2]), static_cast<char>(c[1]), static_cast<char>(c[0])};
        out += std::string(row - 3 * w, '\0');
    }
    return out;
}

/// The colour of a loaded image's top-left pixel.
rgb color_of(const earlyexit::demo::image_u8& im) { return {im(0, 0, 0), im(0, 0, 1), im(0, 0, 2)}; }

/// The ustar checksum: the sum of the header's bytes, the checksum field counted as spaces.
unsigned tar_checksum(const std::string& h) {
    unsigned sum = 8 * ' ';
    for (std::size_t i = 0; i < h.size(); ++i) sum += i >= 148 && i < 156 ? 0 : static_cast<unsigned char>(h[i]);
    return sum;
}

/// Sets a header's checksum field to match its other bytes.
void fix_checksum(std::string& h) {
    const std::string field = fmt::format("{:06o}", tar_checksum(h)) + std::string("\0 ", 2);
    std::memcpy(&h[148], field.data(), field.size());
}

/// One 512-byte ustar header with a valid checksum.
std::string tar_header(const std::string& name, std::size_t size, char type = '0', const std::string& prefix = "",
                       const std::string& magic = std::string("ustar\0" "00", 8)) {
    std::string h(512, '\0');
    const auto put = [&h](std::size_t at, const std::string& s) { std::memcpy(&h[at], s.data(), s.size()); };
    put(0, name);
    put(100, "0000644");
    put(108, "0000000");
    put(116, "0000000");
    put(124, fmt::format("{:011o}", size));
    put(136, "14532175214");
    h[156] = type;
    put(257, magic);
    put(345, prefix);
    fix_checksum(h);
    return h;
}

std::string padded(const std::string& data) { return data + std::string((512 - data.size() % 512) % 512, '\0'); }

std::string tar_member(const std::string& name, const std::string& data, char type = '0', const std::string& prefix = "") {
    return tar_header(name, data.size(), type, prefix) + padded(data);
}

const std::string tar_end(1024, '\0');

/// A pax extended-header record "<length> <key>=<value>\n" (length counts itself).
std::string pax_record(const std::string& key, const std::string& value) {
    const std::string body = " " + key + "=" + value + "\n";
    std::size_t length = body.size() + 1;
    while (std::to_string(length).size() + body.size() != length) ++length;
    return std::to_string(length) + body;
}

const rgb red{255, 0, 0}, green{0, 255, 0}, blue{0, 0, 255}, white{255, 255, 255}, gray{128, 128, 128};

/// The class-folder fixture: cat-x sorts before cat as a path but after it as a class name.
void write_class_folders(const fs::path& root) {
    spit(root / "bird" / "b1.bmp", bmp(red));
    spit(root / "cat" / "c1.bmp", bmp(green));
    spit(root / "cat" / "deeper" / "c2.BMP", bmp(blue));
    spit(root / "cat-x" / "x1.bmp", bmp(white));
    spit(root / "cat" / "notes.txt", "not an image");
    spit(root / "cat" / ".DS_Store", "hidden");
    spit(root / ".git" / "objects" / "o.bmp", bmp(gray));
    spit(root / "README.md", "top-level non-images are ignored");
}

void check_class_folders(const image_dataset& d) {
    REQUIRE(d.size() == 4);
    CHECK(std::vector<std::string>(d.classes().begin(), d.classes().end()) ==
          std::vector<std::string>{"bird", "cat", "cat-x"});
    const std::vector<std::string> names = {"bird/b1.bmp", "cat-x/x1.bmp", "cat/c1.bmp", "cat/deeper/c2.BMP"};
    const std::vector<int> labels = {0, 2, 1, 1};
    const std::vector<rgb> colors = {red, white, green, blue};
    for (std::size_t i = 0; i < d.size(); ++i) {
        CAPTURE(i);
        CHECK(d.name(i) == names[i]);
        CHECK(d.label(i) == labels[i]);
        const auto im = d.load(i);
        CHECK((im.width == 2 && im.height == 2));
        CHECK(color_of(im) == colors[i]);
    }
}

}  // namespace

TEST_CASE("image names are the formats decode_image reads, in any case", "[datasets]") {
    using earlyexit::demo::detail::is_image_name;
    for (const char* name : {"a.jpg", "a.JPEG", "a.png", "a.Bmp", "a.ppm", "a.pgm", "a.pnm", "dir.x/a.jpg"})
        CHECK(is_image_name(name));
    // GIF and TGA are not read (image.hpp), so not counted as images; nor are names without one.
    for (const char* name : {"a.gif", "a.tga", "a.psd", "a.hdr", "a", "a.jpg/b", "jpg"}) CHECK_FALSE(is_image_name(name));
}

TEST_CASE("cifar10_classes lists the ten classes in label order", "[datasets]") {
    const auto c = earlyexit::demo::cifar10_classes();
    REQUIRE(c.size() == 10);
    CHECK(c.front() == "airplane");
    CHECK(c[3] == "cat");
    CHECK(c.back() == "truck");
}

TEST_CASE("folder with class sub-folders: sorted class names are the labels", "[datasets]") {
    temp_dir dir;
    write_class_folders(dir.path);
    const auto d = image_dataset::from_folder(dir.path);
    CHECK(d.kind() == image_dataset::source_kind::folder);
    CHECK(d.path() == dir.path);
    check_class_folders(d);
    check_class_folders(open_dataset(dir.path));
}

TEST_CASE("folder with class sub-folders: given class names map folders to labels", "[datasets]") {
    temp_dir dir;
    spit(dir / "dog" / "0000.bmp", bmp(red));
    spit(dir / "airplane" / "0000.bmp", bmp(green));
    spit(dir / "truck" / "0001.bmp", bmp(blue));
    const dataset_options cifar{.classes = earlyexit::demo::cifar10_classes()};
    const auto d = open_dataset(dir.path, cifar);
    REQUIRE(d.size() == 3);
    CHECK(d.name(0) == "airplane/0000.bmp");
    CHECK(d.label(0) == 0);
    CHECK(d.name(1) == "dog/0000.bmp");
    CHECK(d.label(1) == 5);
    CHECK(d.label(2) == 9);
    CHECK(d.classes().size() == 10);

    spit(dir / "dragon" / "0000.bmp", bmp(red));
    CHECK(what_of([&] { (void)open_dataset(dir.path, cifar); }) ==
          fmt::format("folder {}: class folder 'dragon' is not one of the 10 classes (airplane, automobile, bird, "
                      "cat, deer, dog, frog, horse, ship, truck)",
                      dir.path.string()));
}

TEST_CASE("flat folder with a label list: listed files only, sorted by name", "[datasets]") {
    temp_dir dir;
    const fs::path images = dir / "images";
    spit(images / "b.bmp", bmp(green));
    spit(images / "a.bmp", bmp(red));
    spit(images / "sub" / "c.bmp", bmp(blue));
    spit(images / "notes.txt", "ignored");
    const fs::path list = dir / "labels.txt";
    spit(list, "sub/c.bmp 2\n\n  a.bmp   0 \r\n   \n");
    const auto d = open_dataset(images, {.labels = list});
    REQUIRE(d.size() == 2);
    CHECK(d.name(0) == "a.bmp");
    CHECK(d.label(0) == 0);
    CHECK(color_of(d.load(0)) == red);
    CHECK(d.name(1) == "sub/c.bmp");
    CHECK(d.label(1) == 2);
    CHECK(color_of(d.load(1)) == blue);
    CHECK(d.classes().empty());

    // File names may contain spaces: the label is the last word.
    spit(images / "with space.bmp", bmp(white));
    spit(list, "with space.bmp 1\n");
    const auto spaced = open_dataset(images, {.labels = list});
    REQUIRE(spaced.size() == 1);
    CHECK(spaced.name(0) == "with space.bmp");
    CHECK(color_of(spaced.load(0)) == white);
}

TEST_CASE("label list errors name the file, the line and the text", "[datasets]") {
    temp_dir dir;
    const fs::path images = dir / "images";
    spit(images / "a.bmp", bmp(red));
    spit(images / "b.bmp", bmp(green));
    const fs::path list = dir / "labels.txt";
    const auto error_for = [&](const std::string& text, std::vector<std::string> classes = {}) {
        spit(list, text);
        return what_of([&] { (void)open_dataset(images, {.classes = classes, .labels = list}); });
    };
    const std::string l = list.string();
    CHECK(error_for("a.bmp 0\nb.bmp\n") == l + ":2: expected '<file> <label>', got 'b.bmp'");
    CHECK(error_for("a.bmp x\n") == l + ":1: expected '<file> <label>', got 'a.bmp x'");
    CHECK(error_for("\na.bmp -1\n") == l + ":2: expected '<file> <label>', got 'a.bmp -1'");
    CHECK(error_for("a.bmp 1.5\n") == l + ":1: expected '<file> <label>', got 'a.bmp 1.5'");
    CHECK(error_for("a.bmp 99999999999\n") == l + ":1: expected '<file> <label>', got 'a.bmp 99999999999'");
    CHECK(error_for("a.bmp 0\nb.bmp 3\n", {"x", "y", "z"}) == l + ":2: label 3 is out of range [0, 3) in 'b.bmp 3'");
    CHECK(error_for("a.bmp 0\nzzz.bmp 1\n") ==
          l + ":2: listed file 'zzz.bmp' is not in folder " + images.string());
    CHECK(error_for("a.bmp 0\nb.bmp 1\na.bmp 1\n") == l + ":3: 'a.bmp' is listed twice (first at line 1)");
    CHECK(error_for("\n\n") == "folder " + images.string() + ": the labels list " + l + " names no files");
    const fs::path missing = dir / "missing.txt";
    CHECK(what_of([&] { (void)open_dataset(images, {.labels = missing}); }) ==
          missing.string() + ": cannot open: No such file or directory");
    // Labels in range are fine with class names given.
    spit(list, "b.bmp 2\n");
    CHECK(open_dataset(images, {.classes = {"x", "y", "z"}, .labels = list}).label(0) == 2);
}

TEST_CASE("flat folder without a label list is unlabelled", "[datasets]") {
    temp_dir dir;
    spit(dir / "z.png.bmp", bmp(red));
    spit(dir / "a.JPEG.bmp", bmp(green));
    spit(dir / "readme.txt", "ignored");
    const auto d = open_dataset(dir.path);
    REQUIRE(d.size() == 2);
    CHECK(d.name(0) == "a.JPEG.bmp");
    CHECK(d.label(0) == -1);
    CHECK(d.label(1) == -1);
    CHECK(color_of(d.load(1)) == red);
}

TEST_CASE("folder errors name the folder and the offending file", "[datasets]") {
    temp_dir dir;
    spit(dir / "readme.txt", "no images here");
    CHECK(what_of([&] { (void)open_dataset(dir.path); }) ==
          fmt::format("folder {}: no images (files ending .jpg .jpeg .png .bmp .ppm .pgm .pnm, any case)",
                      dir.path.string()));
    spit(dir / "cat" / "c.bmp", bmp(red));
    spit(dir / "stray.png", "top-level image in a class layout");
    CHECK(what_of([&] { (void)open_dataset(dir.path); }) ==
          fmt::format("folder {}: image 'stray.png' is outside the class folders (the layout is <class>/<file>)",
                      dir.path.string()));
    fs::remove(dir / "stray.png");
    spit(dir / "cat" / "broken.png", "not a png");
    const auto d = open_dataset(dir.path);
    REQUIRE(d.name(0) == "cat/broken.png");
    CHECK(what_of([&] { (void)d.load(0); }) ==
          fmt::format("image {}: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes 6e 6f 74 20)",
                      (dir.path / "cat/broken.png").string()));
    CHECK_THROWS_WITH(image_dataset::from_folder(dir / "missing"),
                      Contains(fmt::format("{}: cannot list the folder: ", (dir / "missing").string())));
}

TEST_CASE("open_dataset picks the reader by what the path is", "[datasets]") {
    temp_dir dir;
    const fs::path missing = dir / "missing";
    CHECK(what_of([&] { (void)open_dataset(missing); }) == "dataset " + missing.string() + ": no such file or directory");
    spit(dir / "data.zip", "zip");
    CHECK(what_of([&] { (void)open_dataset(dir / "data.zip"); }) ==
          "dataset " + (dir / "data.zip").string() +
              ": unknown kind: expected a directory, a .tar file or a CIFAR-10 .bin file");
    spit(dir / "upper.TAR", tar_member("a.bmp", bmp(red)) + tar_end);
    CHECK(open_dataset(dir / "upper.TAR").kind() == image_dataset::source_kind::tar);
    spit(dir / "one.BIN", std::string(3073, '\0'));
    CHECK(open_dataset(dir / "one.BIN").kind() == image_dataset::source_kind::cifar10_binary);
    spit(dir / "images" / "a.bmp", bmp(red));
    CHECK(open_dataset(dir / "images").kind() == image_dataset::source_kind::folder);
}

TEST_CASE("index out of range throws, naming the index and the size", "[datasets]") {
    temp_dir dir;
    spit(dir / "a.bmp", bmp(red));
    const auto d = open_dataset(dir.path);
    const std::string expected = fmt::format("dataset {}: index 1 is out of range (size 1)", dir.path.string());
    CHECK(what_of([&] { (void)d.label(1); }) == expected);
    CHECK(what_of([&] { (void)d.name(1); }) == expected);
    CHECK(what_of([&] { (void)d.load(1); }) == expected);
}

TEST_CASE("tar with class folders reads like the folder it was made from", "[datasets][tar]") {
    temp_dir dir;
    // Every way a tar names a member: plain, "./"-prefixed, the ustar prefix field, a GNU long
    // name, a pax path; plus entries that are skipped (directories, a pax global header, hidden).
    const std::string long_dir = "cat/" + std::string(120, 'd');
    const std::string pax = pax_record("mtime", "1700000000.25") + pax_record("path", "cat/deeper/c2.BMP");
    const std::string gnu_magic("ustar  \0", 8);
    const std::string tar = tar_member("pax_global_header", pax_record("comment", "commit id"), 'g') +
                            tar_member("./", "", '5') + tar_header("cat-x/x1.bmp", 70, '0', "", gnu_magic) +
                            padded(bmp(white)) + tar_member("./bird/b1.bmp", bmp(red)) +
                            tar_member("c1.bmp", bmp(green), '0', "cat") +
                            tar_member("././@LongLink", long_dir + "/g.txt", 'L') +
                            tar_member("truncated-name", "ignored") +
                            tar_member("PaxHeaders/c2", pax, 'x') + tar_member("c2.BMP", bmp(blue), '0') +
                            tar_member("cat/._c1.bmp", "macOS resource fork") + tar_end;
    spit(dir / "classes.tar", tar);
    const auto d = open_dataset(dir / "classes.tar");
    CHECK(d.kind() == image_dataset::source_kind::tar);
    check_class_folders(d);  // the long-named .txt is listed but is no image
}

TEST_CASE("tar with a label list and tar load errors", "[datasets][tar]") {
    temp_dir dir;
    spit(dir / "flat.tar", tar_member("ILSVRC2012_val_00000002.JPEG", bmp(green)) +
                               tar_member("ILSVRC2012_val_00000001.JPEG", bmp(red)) +
                               tar_member("broken.JPEG", "garbage") + tar_end);
    spit(dir / "labels.txt", "ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\nbroken.JPEG 1\n");
    const auto d = open_dataset(dir / "flat.tar", {.labels = dir / "labels.txt"});
    REQUIRE(d.size() == 3);
    CHECK(d.name(0) == "ILSVRC2012_val_00000001.JPEG");
    CHECK(d.label(0) == 65);
    CHECK(color_of(d.load(0)) == red);
    CHECK(d.label(1) == 970);
    CHECK(color_of(d.load(1)) == green);
    CHECK(what_of([&] { (void)d.load(2); }) ==
          fmt::format("image {}:broken.JPEG: cannot decode: not a JPEG, PNG, BMP or binary PNM (P5, P6) file (first bytes "
                      "67 61 72 62)",
                      (dir / "flat.tar").string()));

    spit(dir / "labels.txt", "nope.JPEG 1\n");
    CHECK(what_of([&] { (void)open_dataset(dir / "flat.tar", {.labels = dir / "labels.txt"}); }) ==
          fmt::format("{}:1: listed file 'nope.JPEG' is not in tar {}", (dir / "labels.txt").string(),
                      (dir / "flat.tar").string()));

    // The tar shrinks after open: load names the member instead of decoding garbage.
    spit(dir / "flat.tar", std::string(600, '\0'));
    CHECK(what_of([&] { (void)d.load(0); }) ==
          fmt::format("{}: cannot read 'ILSVRC2012_val_00000001.JPEG' (70 bytes at offset 1536): was the file "
                      "modified or removed?",
                      (dir / "flat.tar").string()));
}

TEST_CASE("tar errors name the tar, the offset and the member", "[datasets][tar]") {
    temp_dir dir;
    const fs::path t = dir / "bad.tar";
    const std::string what = "tar " + t.string();
    const auto error_for = [&](const std::string& bytes) {
        spit(t, bytes);
        return what_of([&] { (void)image_dataset::from_tar(t); });
    };
    const std::string good = tar_member("a/x.bmp", bmp(red));
    std::string zeroed = tar_header("b/y.bmp", 0);
    std::memcpy(&zeroed[148], "0000000", 8);  // with its NUL
    CHECK(error_for(good + zeroed + tar_end) == what + ": header at offset 1024: bad checksum (stored '0000000', computed " +
                                                    std::to_string(tar_checksum(zeroed)) + "): not a tar file, or corrupt");
    CHECK(error_for(std::string("\x1f\x8b\x08\x00", 4) + std::string(2000, 'x')) ==
          what + ": gzip-compressed; only uncompressed tars are read (gunzip it first)");
    CHECK(error_for(tar_header("a/x.bmp", 0, '0', "", std::string(8, '\0')) + tar_end) ==
          what + ": header at offset 0: magic '' is not ustar (pre-POSIX tars are not supported)");
    CHECK(error_for(good + tar_member("a/link.bmp", "", '2') + tar_end) ==
          what + ": member 'a/link.bmp' at offset 1024: type '2' is not supported (only regular files and "
                 "directories are)");
    CHECK(error_for(good + good + tar_end) == what + ": member 'a/x.bmp' appears more than once");
    CHECK(error_for(good + std::string(512, '\0') + good + tar_end) ==
          what + ": corrupt: a lone zero block at offset 1024 is followed by data");
    std::string bad_size = tar_header("a/x.bmp", 0);
    std::memcpy(&bad_size[124], "12345678x01", 11);
    fix_checksum(bad_size);
    CHECK(error_for(bad_size + tar_end) ==
          what + ": member 'a/x.bmp' at offset 0: size field '12345678x01' is not an octal number");
    CHECK(error_for(tar_member("PaxHeaders/x", "12 path=a/b\n99 oops", 'x') + good + tar_end) ==
          what + ": member 'PaxHeaders/x' at offset 0: malformed pax record '99 oops'");
    CHECK(error_for(tar_member("PaxHeaders/x", pax_record("size", "12x"), 'x') + good + tar_end) ==
          what + ": member 'PaxHeaders/x' at offset 0: malformed pax size '12x'");
    // fuzz_tar: a NUL in a pax path cut the member's name short in its load errors.
    CHECK(error_for(tar_member("PaxHeaders/x", pax_record("path", std::string("a/x\0y.bmp", 9)), 'x') + good + tar_end) ==
          what + ": member 'PaxHeaders/x' at offset 0: pax path 'a/x' holds a NUL byte at 3");
    CHECK(error_for(tar_end) ==
          what + ": no images (files ending .jpg .jpeg .png .bmp .ppm .pgm .pnm, any case)");
    const fs::path missing = dir / "missing.tar";
    CHECK_THROWS_WITH(image_dataset::from_tar(missing), Contains("tar " + missing.string() + ": cannot open: "));
}

TEST_CASE("tar: a pax header or GNU long name over 1 MiB is refused before it is read", "[datasets][tar][robustness]") {
    temp_dir dir;
    const fs::path t = dir / "long.tar";
    const std::string good = tar_member("a/x.bmp", bmp(red));
    const std::string big(earlyexit::demo::detail::tar_max_extended_header + 1, 'n');
    spit(t, tar_member("././@LongLink", big, 'L') + good + tar_end);
    CHECK(what_of([&] { (void)image_dataset::from_tar(t); }) ==
          "tar " + t.string() + ": member '././@LongLink' at offset 0: GNU long name of 1048577 bytes is more than the "
                                "1048576 read (a corrupt size?)");
    spit(t, tar_member("PaxHeaders/x", big, 'x') + good + tar_end);
    CHECK(what_of([&] { (void)image_dataset::from_tar(t); }) ==
          "tar " + t.string() + ": member 'PaxHeaders/x' at offset 0: pax header of 1048577 bytes is more than the "
                                "1048576 read (a corrupt size?)");
}

TEST_CASE("every truncation of a tar throws earlyexit::error at open", "[datasets][tar][robustness]") {
    temp_dir dir;
    const std::string tar = tar_member("./", "", '5') + tar_member("a/x.bmp", bmp(red)) +
                            tar_member("PaxHeaders/y", pax_record("path", "b/y.bmp"), 'x') + tar_member("y", bmp(green)) +
                            tar_end;
    spit(dir / "full.tar", tar);
    REQUIRE(image_dataset::from_tar(dir / "full.tar").size() == 2);
    // Shrinking one file in place: rewriting it per length makes ext4 flush on every close.
    spit(dir / "cut.tar", tar);
    for (std::size_t n = tar.size(); n-- > 0;) {
        CAPTURE(n);
        fs::resize_file(dir / "cut.tar", n);
        CHECK_THROWS_AS(image_dataset::from_tar(dir / "cut.tar"), earlyexit::error);
    }
    // Named truncations: inside a header, inside a member's data, between the end blocks.
    const std::string what = "tar " + (dir / "cut.tar").string();
    spit(dir / "cut.tar", tar.substr(0, 700));
    CHECK(what_of([&] { (void)image_dataset::from_tar(dir / "cut.tar"); }) ==
          what + ": truncated: the file ends at byte 700, inside or before the header at offset 512 (no "
                 "end-of-archive blocks)");
    spit(dir / "cut.tar", tar.substr(0, 1050));
    CHECK(what_of([&] { (void)image_dataset::from_tar(dir / "cut.tar"); }) ==
          what + ": truncated: member 'a/x.bmp' needs 70 bytes at offset 1024, the file ends at byte 1050");
    spit(dir / "cut.tar", tar.substr(0, tar.size() - 512));
    CHECK(what_of([&] { (void)image_dataset::from_tar(dir / "cut.tar"); }) ==
          what + ": truncated: the file ends at byte " + std::to_string(tar.size() - 512) +
              " after one of the two end-of-archive zero blocks");
}

TEST_CASE("random header mutations of a tar open and load, or throw earlyexit::error", "[datasets][tar][robustness]") {
    temp_dir dir;
    // Headers at 0, 512, 1536 (pax), 2560, 3584 (long name), 4608; checksums are re-fixed after
    // each mutation, so the parser sees headers that pass the first check.
    const std::vector<std::size_t> headers = {0, 512, 1536, 2560, 3584, 4608};
    const std::string tar = tar_member("./", "", '5') + tar_member("a/x.bmp", bmp(red)) +
                            tar_member("PaxHeaders/y", pax_record("path", "b/y.bmp") + pax_record("size", "70"), 'x') +
                            tar_member("y", bmp(green)) + tar_member("././@LongLink", "c/z.bmp", 'L') +
                            tar_member("z", bmp(blue)) + tar_end;
    REQUIRE(tar.size() == 6656);
    spit(dir / "m.tar", tar);
    REQUIRE(image_dataset::from_tar(dir / "m.tar").size() == 3);
    std::mt19937 rng(7);
    for (int round = 0; round < 2000; ++round) {
        std::string bytes = tar;
        const std::size_t n = 1 + rng() % 3;
        for (std::size_t m = 0; m < n; ++m) {
            const std::size_t header = headers[rng() % headers.size()];
            bytes[header + rng() % 512] = static_cast<char>(rng() % 4 == 0 ? '0' + rng() % 10 : rng() % 256);
            std::string h = bytes.substr(header, 512);
            fix_checksum(h);
            bytes.replace(header, 512, h);
        }
        CAPTURE(round);
        std::fstream(dir / "m.tar", std::ios::in | std::ios::out | std::ios::binary).write(bytes.data(), 6656);
        try {
            const auto d = image_dataset::from_tar(dir / "m.tar");
            for (std::size_t i = 0; i < d.size(); ++i) {
                try {
                    (void)d.load(i);
                } catch (const earlyexit::error&) {
                }
            }
        } catch (const earlyexit::error&) {
        }
    }
}

namespace {

/// A CIFAR-10 binary of records with the given labels; record r, channel c, pixel p holds
/// (50r + 20c + p) mod 256.
std::string cifar_bin(const std::vector<int>& labels) {
    std::string out;
    for (std::size_t r = 0; r < labels.size(); ++r) {
        out += static_cast<char>(labels[r]);
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t p = 0; p < 1024; ++p) out += static_cast<char>((50 * r + 20 * c + p) % 256);
    }
    return out;
}

}  // namespace

TEST_CASE("CIFAR-10 binary: labels from the records, planes to HWC pixels", "[datasets][cifar10]") {
    temp_dir dir;
    spit(dir / "test_batch.bin", cifar_bin({3, 0, 9}));
    const auto d = open_dataset(dir / "test_batch.bin");
    CHECK(d.kind() == image_dataset::source_kind::cifar10_binary);
    REQUIRE(d.size() == 3);
    CHECK(d.label(0) == 3);
    CHECK(d.label(1) == 0);
    CHECK(d.label(2) == 9);
    CHECK(d.name(2) == "test_batch.bin#2");
    CHECK(d.classes().size() == 10);
    CHECK(d.classes()[9] == "truck");
    for (std::size_t r = 0; r < 3; ++r) {
        const auto im = d.load(r);
        REQUIRE((im.width == 32 && im.height == 32));
        for (int y = 0; y < 32; y += 7)
            for (int x = 0; x < 32; x += 5)
                for (int c = 0; c < 3; ++c) {
                    CAPTURE(r, y, x, c);
                    const auto pixel = static_cast<std::size_t>(y * 32 + x);
                    CHECK(im(y, x, c) == (50 * r + 20 * static_cast<std::size_t>(c) + pixel) % 256);
                }
    }
    const std::vector<std::string> names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    CHECK(open_dataset(dir / "test_batch.bin", {.classes = names}).classes()[9] == "j");
}

TEST_CASE("CIFAR-10 binary errors name the file and the value", "[datasets][cifar10]") {
    temp_dir dir;
    const fs::path f = dir / "bad.bin";
    const std::string what = "cifar10 binary " + f.string();
    spit(f, cifar_bin({1, 10}));
    CHECK(what_of([&] { (void)open_dataset(f); }) == what + ": record 1 has label 10, expected 0..9");
    spit(f, cifar_bin({1}) + "x");
    CHECK(what_of([&] { (void)open_dataset(f); }) == what + ": size 3074 bytes is not a positive multiple of 3073");
    spit(f, "");
    CHECK(what_of([&] { (void)open_dataset(f); }) == what + ": size 0 bytes is not a positive multiple of 3073");
    spit(f, cifar_bin({1}));
    CHECK(what_of([&] { (void)open_dataset(f, {.classes = {"a", "b"}}); }) ==
          what + ": 2 class names given, CIFAR-10 has 10");
    CHECK(what_of([&] { (void)open_dataset(f, {.labels = dir / "labels.txt"}); }) ==
          what + ": a labels list (" + (dir / "labels.txt").string() + ") only applies to folders and tars");
}

TEST_CASE("every truncation of a CIFAR-10 binary throws, except at record boundaries", "[datasets][cifar10][robustness]") {
    // The format has no header or count, so a cut between records is a valid shorter file.
    temp_dir dir;
    const std::string bin = cifar_bin({1, 2, 3});
    spit(dir / "cut.bin", bin);
    for (std::size_t n = bin.size(); n-- > 0;) {  // shrinking in place, as for the tar
        CAPTURE(n);
        fs::resize_file(dir / "cut.bin", n);
        if (n > 0 && n % 3073 == 0) CHECK(open_dataset(dir / "cut.bin").size() == n / 3073);
        else CHECK_THROWS_AS(open_dataset(dir / "cut.bin"), earlyexit::error);
    }
}
