// The safetensors container (format in include/mnist_gpu/safetensors.hpp): a float32 writer and a
// reader that validates the header completely, against the file's size, before it allocates.
#include "mnist_gpu/safetensors.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"

namespace mnist_gpu {
namespace {

using json = nlohmann::json;

// One tensor of a validated header: where its bytes are and how to read them.
struct Entry {
  std::string name, dtype;
  std::size_t elem = 4;  // bytes per element
  std::vector<std::int64_t> shape;
  std::uint64_t count = 0;  // elements
  std::uint64_t begin = 0, end = 0;  // [begin, end) in the data section
};

struct Header {
  std::vector<Entry> entries;  // sorted by begin
  std::map<std::string, std::string> metadata;
};

std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

// The header's JSON, checked field by field; every tensor's span checked against `data_size`.
Header parse_header(const std::uint8_t* text, std::size_t n, std::uint64_t data_size, const std::string& file) {
  auto bad = [&](const std::string& what) { return Error(file + ": " + what); };
  const json j = json::parse(text, text + n, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw bad("the header is not valid JSON (not a safetensors file, or a corrupt one)");
  if (!j.is_object()) throw bad("the header is JSON but not an object of tensors");
  Header h;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw bad("__metadata__ must be an object of strings");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) throw bad("__metadata__ '" + k + "' is not a string");
        h.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string t = "tensor '" + key + "': ";
    if (!value.is_object()) throw bad(t + "expected an object with dtype, shape and data_offsets");
    for (const auto& [field, _] : value.items())
      if (field != "dtype" && field != "shape" && field != "data_offsets")
        throw bad(t + "unexpected field '" + field + "' (expected dtype, shape and data_offsets)");
    if (!value.contains("dtype") || !value["dtype"].is_string()) throw bad(t + "no dtype string");
    Entry e;
    e.name = key;
    e.dtype = value["dtype"].get<std::string>();
    if (e.dtype == "F32")
      e.elem = 4;
    else if (e.dtype == "BF16" || e.dtype == "F16")
      e.elem = 2;
    else
      throw bad(t + "dtype " + e.dtype + " is not supported (expected F32, BF16 or F16)");
    if (!value.contains("shape") || !value["shape"].is_array()) throw bad(t + "no shape array");
    // Element count, overflow-checked: each dimension an unsigned integer, the product below 2^62.
    constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 62;
    e.count = 1;
    for (const auto& d : value["shape"]) {
      if (!d.is_number_unsigned()) throw bad(t + "shape entries must be non-negative integers, got " + d.dump());
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim > 0 && e.count > kMaxCount / dim) throw bad(t + "shape " + value["shape"].dump() + " is absurdly large");
      e.count *= dim;
      e.shape.push_back(static_cast<std::int64_t>(dim));
    }
    const auto& off = value.contains("data_offsets") ? value["data_offsets"] : json();
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw bad(t + "data_offsets must be [begin, end], two non-negative integers");
    e.begin = off[0].get<std::uint64_t>();
    e.end = off[1].get<std::uint64_t>();
    if (e.begin > e.end) throw bad(t + "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] end before they begin");
    if (e.end > data_size)
      throw bad(t + "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                "] run past the end of the data section (" + std::to_string(data_size) +
                " bytes): the header lies or the file is truncated");
    if (e.end - e.begin != e.count * e.elem)
      throw bad(t + "shape " + shape_text(e.shape) + " of " + e.dtype + " needs " + std::to_string(e.count * e.elem) +
                " bytes, but data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] span " +
                std::to_string(e.end - e.begin));
    h.entries.push_back(std::move(e));
  }
  // The tensors must tile the data section: no overlap, no gap, nothing after the last one.
  std::stable_sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t at = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < at)
      throw bad("tensor '" + e.name + "': data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                "] overlap tensor '" + prev->name + "' (which ends at " + std::to_string(at) + ")");
    if (e.begin > at)
      throw bad("tensor '" + e.name + "': data_offsets begin at " + std::to_string(e.begin) + ", leaving a gap of " +
                std::to_string(e.begin - at) + " bytes after " + (prev ? "tensor '" + prev->name + "'" : "the header"));
    at = e.end;
    prev = &e;
  }
  if (at != data_size)
    throw bad("the data section is " + std::to_string(data_size) + " bytes but the header's tensors cover " +
              std::to_string(at) + ": " + std::to_string(data_size - at) +
              " bytes more than the header says (a file larger than its header)");
  return h;
}

// The tensors' values from a data section the header was validated against.
SafeTensors decode(Header&& h, const std::uint8_t* data) {
  SafeTensors out;
  out.metadata = std::move(h.metadata);
  for (Entry& e : h.entries) {
    SafeTensor t;
    t.name = std::move(e.name);
    t.shape = std::move(e.shape);
    t.dtype = e.dtype;
    t.values.resize(static_cast<std::size_t>(e.count));
    const std::uint8_t* p = e.count > 0 ? data + e.begin : nullptr;  // an empty section's data may be null
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      if (e.dtype == "F32") {
        const std::uint32_t bits = static_cast<std::uint32_t>(p[4 * i]) | static_cast<std::uint32_t>(p[4 * i + 1]) << 8 |
                                   static_cast<std::uint32_t>(p[4 * i + 2]) << 16 |
                                   static_cast<std::uint32_t>(p[4 * i + 3]) << 24;
        std::memcpy(&t.values[i], &bits, 4);
      } else {
        const auto bits = static_cast<std::uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
        t.values[i] = e.dtype == "BF16" ? bfloat16_to_float(bits) : half_to_float(bits);
      }
    }
    out.tensors.push_back(std::move(t));
  }
  return out;
}

// The header length of a file of `size` bytes, checked against the size and the limit.
std::uint64_t header_length(const std::uint8_t* first8, std::uint64_t size, const std::string& file) {
  const std::uint64_t n = get_u64(first8);
  if (n > kSafetensorsMaxHeader)
    throw Error(file + ": header length " + std::to_string(n) + " is above the " +
                std::to_string(kSafetensorsMaxHeader) + "-byte limit (not a safetensors file, or a corrupt one)");
  if (n > size - 8)
    throw Error(file + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                std::to_string(size) + " bytes): truncated, or not a safetensors file");
  if (n < 2) throw Error(file + ": header length " + std::to_string(n) + " is too short for a JSON object");
  return n;
}

}  // namespace

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;  // infinity or NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | (exp + 112) << 23 | mant << 13;  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: mant * 2^-24 is a normal float32; shift the leading one into the implicit bit.
    int e = -1;
    std::uint32_t m = mant;
    do {
      ++e;
      m <<= 1;
    } while ((m & 0x400u) == 0);
    bits = sign | static_cast<std::uint32_t>(112 - e) << 23 | (m & 0x3ffu) << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bfloat16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;  // bfloat16 is float32's top half
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<std::uint8_t> encode_safetensors(const SafeTensors& file) {
  json header = json::object();
  std::set<std::string> names;
  std::uint64_t at = 0;
  for (const SafeTensor& t : file.tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second)
      throw Error("safetensors: tensor name '" + t.name + "' is empty, reserved or repeated");
    std::uint64_t count = 1;
    for (std::int64_t d : t.shape) count *= static_cast<std::uint64_t>(d);
    if (count != t.values.size())
      throw Error("safetensors: tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                  " values but shape " + shape_text(t.shape));
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {at, at + 4 * count}}};
    at += 4 * count;
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::vector<std::uint8_t> out(8 + text.size() + at);
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::uint8_t* p = out.data() + 8 + text.size();
  for (const SafeTensor& t : file.tensors)
    for (float v : t.values) {
      std::uint32_t bits;
      std::memcpy(&bits, &v, 4);
      for (int i = 0; i < 4; ++i) *p++ = static_cast<std::uint8_t>(bits >> (8 * i));
    }
  return out;
}

SafeTensors parse_safetensors(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
  if (size < 8)
    throw Error(name + ": " + std::to_string(size) + " bytes is too short for a safetensors file (an 8-byte header "
                "length comes first)");
  const std::uint64_t n = header_length(bytes, size, name);
  Header h = parse_header(bytes + 8, static_cast<std::size_t>(n), size - 8 - n, name);
  return decode(std::move(h), bytes + 8 + n);
}

SafeTensors read_safetensors(const std::filesystem::path& file) {
  const std::string name = file.string();
  const InputFile f = open_input_file(file, "a safetensors file");
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) != 0) throw Error(name + ": cannot stat (" + std::strerror(errno) + ")");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  auto read = [&](std::uint8_t* dst, std::uint64_t n) {
    if (n > 0 && std::fread(dst, 1, static_cast<std::size_t>(n), f.get()) != n)
      throw Error(name + ": read error or file changed while reading");
  };
  std::uint8_t first8[8];
  if (size < 8)
    throw Error(name + ": " + std::to_string(size) + " bytes is too short for a safetensors file (an 8-byte header "
                "length comes first)");
  read(first8, 8);
  const std::uint64_t n = header_length(first8, size, name);
  std::vector<std::uint8_t> text(static_cast<std::size_t>(n));
  read(text.data(), n);
  Header h = parse_header(text.data(), text.size(), size - 8 - n, name);
  // The header now accounts for every remaining byte: read the data section.
  std::vector<std::uint8_t> data(static_cast<std::size_t>(size - 8 - n));
  read(data.data(), data.size());
  return decode(std::move(h), data.data());
}

}  // namespace mnist_gpu
