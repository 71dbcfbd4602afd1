// The saved-model file (format in include/mnist_gpu/model_io.hpp): encoding, atomic write,
// and a reader that validates the header and the exact file size before it allocates.
#include "mnist_gpu/model_io.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "mnist_gpu/activation.hpp"
#include "mnist_gpu/error.hpp"
#include "mnist_gpu/file_io.hpp"
#include "mnist_gpu/model.hpp"

namespace mnist_gpu {
namespace {

constexpr char kMagic[8] = {'M', 'N', 'I', 'S', 'T', 'G', 'P', 'U'};
constexpr std::size_t kFixedHeader = 24;  // magic, version, inputs, outputs, hidden count
constexpr std::size_t kMaxHeader = kFixedHeader + 4 * (kModelMaxLayers - 1) + 16;

// Appends little-endian integers at a cursor into a buffer sized in advance.
struct Writer {
  std::uint8_t* p;
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) *p++ = static_cast<std::uint8_t>(v >> (8 * i));
  }
  void u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v));
    u32(static_cast<std::uint32_t>(v >> 32));
  }
};
std::uint32_t get_u32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
std::uint64_t get_u64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(get_u32(p)) | static_cast<std::uint64_t>(get_u32(p + 4)) << 32;
}

std::uint32_t activation_code(Activation a) {
  if (a == Activation::identity) throw Error("model: hidden activation 'identity' cannot be saved");
  return activation_info(a).model_code;
}

// "0 relu, 1 sigmoid, 2 tanh": the codes a header may hold.
std::string activation_codes() {
  std::string s;
  for (const ActivationInfo& e : kActivationTable)
    s += (s.empty() ? "" : ", ") + std::to_string(e.model_code) + " " + e.name;
  return s;
}

// crc32 over any length (zlib's length argument is a uInt).
std::uint32_t crc_update(std::uint32_t crc, const std::uint8_t* p, std::size_t n) {
  uLong c = crc;
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
    c = ::crc32(c, p, chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<std::uint32_t>(c);
}

std::string errno_text() { return std::strerror(errno); }

// Where parameter `i` of the arena sits: "layer 2 weight [3, 17]" (W is (out, in)) or "layer 3 bias [4]".
std::string describe_param(const ModelSpec& spec, std::size_t i) {
  const ParamLayout layout(spec);
  for (std::size_t l = 0; l < layout.layers.size(); ++l) {
    const LayerView& v = layout.layers[l];
    const std::size_t in = static_cast<std::size_t>(v.in), n_w = in * static_cast<std::size_t>(v.out);
    const std::string layer = "layer " + std::to_string(l + 1);
    if (i >= v.w && i < v.w + n_w)
      return layer + " weight [" + std::to_string((i - v.w) / in) + ", " + std::to_string((i - v.w) % in) + "]";
    if (i >= v.b && i < v.b + static_cast<std::size_t>(v.out)) return layer + " bias [" + std::to_string(i - v.b) + "]";
  }
  return "outside every layer";
}

// A NaN or infinite parameter makes every output NaN: refused when read, naming the first.
void check_finite(const std::string& name, const SavedModel& m) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < m.params.size(); ++i)
    if (!std::isfinite(m.params[i]) && bad++ == 0) first = i;
  if (bad == 0) return;
  const float v = m.params[first];
  throw Error(name + ": parameter " + std::to_string(first) + " (" + describe_param(m.spec, first) + ") is " +
              (std::isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity") + " (" + std::to_string(bad) + " of the " +
              std::to_string(m.params.size()) +
              " parameters are not finite): the model cannot be used; was it saved from a diverged run?");
}

}  // namespace

std::vector<std::uint8_t> encode_model(const ModelSpec& spec, const std::vector<float>& params) {
  if (spec.hidden.size() > kModelMaxLayers - 1)
    throw Error("model: " + std::to_string(spec.hidden.size()) + " hidden layers; a model file holds at most " +
                std::to_string(kModelMaxLayers - 1));
  const ParamLayout layout(spec);
  if (params.size() != layout.size)
    throw Error("model: " + std::to_string(params.size()) + " parameters given, the spec needs " +
                std::to_string(layout.size));
  std::vector<std::uint8_t> out(44 + 4 * spec.hidden.size() + 4 * params.size());
  std::memcpy(out.data(), kMagic, 8);
  Writer w{out.data() + 8};
  w.u32(kModelFormatVersion);
  w.u32(static_cast<std::uint32_t>(spec.inputs));
  w.u32(static_cast<std::uint32_t>(spec.outputs));
  w.u32(static_cast<std::uint32_t>(spec.hidden.size()));
  for (int width : spec.hidden) w.u32(static_cast<std::uint32_t>(width));
  w.u32(activation_code(spec.activation));
  w.u32(spec.loss == Loss::xent ? 0u : 1u);
  w.u64(params.size());
  for (float f : params) {
    std::uint32_t bits;
    std::memcpy(&bits, &f, 4);
    w.u32(bits);
  }
  w.u32(crc_update(0, out.data(), out.size() - 4));
  return out;
}

void check_model_writable(const std::filesystem::path& file) { check_file_writable(file, "save the model"); }

void save_model(const std::filesystem::path& file, const ModelSpec& spec, const std::vector<float>& params) {
  write_file_atomically(file, encode_model(spec, params));
}

SavedModel load_model(const std::filesystem::path& file) {
  const std::string name = file.string();
  auto bad = [&](const std::string& what) { return Error(name + ": " + what); };
  const InputFile f = open_input_file(file, "an mnist_gpu model file");
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) != 0) throw bad("cannot stat the model file (" + errno_text() + ")");
  const std::uint64_t file_size = static_cast<std::uint64_t>(st.st_size);
  if (file_size == 0) throw bad("the file is empty, not an mnist_gpu model file");

  // The header is at most kMaxHeader bytes; read what there is of it.
  std::uint8_t head[kMaxHeader];
  const std::size_t got = std::fread(head, 1, static_cast<std::size_t>(std::min<std::uint64_t>(file_size, kMaxHeader)), f.get());
  if (std::ferror(f.get())) throw bad("read error (" + errno_text() + ")");
  if (got < 8 || std::memcmp(head, kMagic, 8) != 0) throw bad("not an mnist_gpu model file (no MNISTGPU magic)");
  const std::string truncated_header = "truncated: the file ends inside the header (" + std::to_string(file_size) + " bytes)";
  if (got < 12) throw bad(truncated_header);
  const std::uint32_t version = get_u32(head + 8);
  if (version > kModelFormatVersion)
    throw bad("model format version " + std::to_string(version) + " is newer than this program reads (version " +
              std::to_string(kModelFormatVersion) + "); use a newer mnist_gpu");
  if (version == 0) throw bad("invalid model format version 0");
  if (got < kFixedHeader) throw bad(truncated_header);

  auto check_width = [&](const char* what, std::uint32_t v) {
    if (v < 1 || v > kModelMaxWidth)
      throw bad(std::string(what) + " " + std::to_string(v) + " is outside 1.." + std::to_string(kModelMaxWidth) +
                " (corrupt or forged header)");
    return static_cast<int>(v);
  };
  SavedModel m;
  m.spec.inputs = check_width("inputs", get_u32(head + 12));
  m.spec.outputs = check_width("outputs", get_u32(head + 16));
  const std::uint32_t n_hidden = get_u32(head + 20);
  if (n_hidden > kModelMaxLayers - 1)
    throw bad(std::to_string(n_hidden) + " hidden layers: at most " + std::to_string(kModelMaxLayers - 1) +
              " are allowed (" + std::to_string(kModelMaxLayers) + " dense layers; corrupt or forged header)");
  const std::size_t header_size = kFixedHeader + 4 * static_cast<std::size_t>(n_hidden) + 16;
  if (got < header_size) throw bad(truncated_header);
  m.spec.hidden.clear();
  for (std::uint32_t i = 0; i < n_hidden; ++i)
    m.spec.hidden.push_back(check_width(("hidden width " + std::to_string(i + 1)).c_str(), get_u32(head + kFixedHeader + 4 * i)));
  const std::uint8_t* tail = head + kFixedHeader + 4 * static_cast<std::size_t>(n_hidden);
  const std::uint32_t act = get_u32(tail), loss = get_u32(tail + 4);
  const ActivationInfo* known_act = find_activation_code(act);
  if (!known_act) throw bad("unknown activation code " + std::to_string(act) + " (" + activation_codes() + ")");
  if (loss > 1) throw bad("unknown loss code " + std::to_string(loss) + " (0 xent, 1 l2)");
  m.spec.activation = known_act->value;
  m.spec.loss = loss == 0 ? Loss::xent : Loss::l2;
  const std::uint64_t count = get_u64(tail + 8);
  const std::size_t expected_count = ParamLayout(m.spec).size;  // <= 64 * 65536^2: fits in 64 bits
  if (count != expected_count)
    throw bad("parameter count " + std::to_string(count) + " does not match the model's shape, which needs " +
              std::to_string(expected_count) + " (corrupt or forged header)");
  const std::uint64_t expected_size = header_size + 4 * static_cast<std::uint64_t>(count) + 4;
  if (file_size < expected_size)
    throw bad("truncated: " + std::to_string(file_size) + " bytes, the model needs " + std::to_string(expected_size));
  if (file_size > expected_size)
    throw bad(std::to_string(file_size - expected_size) + " trailing bytes after the model (" +
              std::to_string(file_size) + " bytes, expected " + std::to_string(expected_size) + ")");

  // The size is now known to be exactly right: allocate and read the arena.
  std::uint32_t crc = crc_update(0, head, header_size);
  std::vector<std::uint8_t> raw(4 * static_cast<std::size_t>(count) + 4);
  std::memcpy(raw.data(), head + header_size, got - header_size);
  const std::size_t rest = raw.size() - (got - header_size);
  if (rest > 0 && std::fread(raw.data() + (got - header_size), 1, rest, f.get()) != rest)
    throw bad("read error or file changed while reading (" + errno_text() + ")");
  crc = crc_update(crc, raw.data(), raw.size() - 4);
  if (crc != get_u32(raw.data() + raw.size() - 4)) throw bad("checksum mismatch: the file is corrupt");
  m.params.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t bits = get_u32(raw.data() + 4 * i);
    std::memcpy(&m.params[i], &bits, 4);
  }
  check_finite(name, m);
  return m;
}

}  // namespace mnist_gpu
