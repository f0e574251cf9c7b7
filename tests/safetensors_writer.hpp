#pragma once
// Test support for the demo model loaders: write a small safetensors file (F32 tensors and
// string metadata), and copy a weight file with its "architecture" metadata edited.

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace earlyexit_test {

struct f32_tensor {
    std::string name;
    std::vector<std::size_t> shape;
    std::vector<float> values;  // row-major, as many as the shape holds
};

/// Writes the safetensors file `path`: header length, header JSON (metadata = an object of
/// strings), then the tensors' bytes in the order given.
inline void write_safetensors(const std::filesystem::path& path, const nlohmann::json& metadata,
                              const std::vector<f32_tensor>& tensors) {
    nlohmann::json header;
    header["__metadata__"] = metadata;
    std::string data;
    for (const auto& t : tensors) {
        const std::size_t begin = data.size();
        data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
        header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
    }
    const std::string h = header.dump();
    const std::uint64_t n = h.size();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << h << data;
}

/// A copy of the weight file `source` at `dest` whose architecture metadata (JSON) `edit`
/// changed; everything else is the same bytes.
template <class Edit>
std::filesystem::path with_architecture(const std::filesystem::path& source, const std::filesystem::path& dest, Edit edit) {
    std::ifstream in(source, std::ios::binary);
    std::uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    std::string header(n, ' ');
    in.read(header.data(), static_cast<std::streamsize>(n));
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto h = nlohmann::json::parse(header);
    auto arch = nlohmann::json::parse(h["__metadata__"]["architecture"].get<std::string>());
    edit(arch);
    h["__metadata__"]["architecture"] = arch.dump();
    header = h.dump();
    header.append((8 - header.size() % 8) % 8, ' ');
    n = header.size();
    std::ofstream out(dest, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << header << data;
    return dest;
}

}  // namespace earlyexit_test
