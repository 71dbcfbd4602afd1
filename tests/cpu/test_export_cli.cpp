// The `export` and `import` commands end to end: the files they write, exit codes, and refusals
// (an unwritable output before any work, a bad flag, a missing tensor) with their messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mnist_gpu/model.hpp"
#include "mnist_gpu/model_export.hpp"
#include "mnist_gpu/model_io.hpp"
#include "mnist_gpu/safetensors.hpp"
#include "test_paths.hpp"

using namespace mnist_gpu;

namespace {

ModelSpec spec_of(std::vector<int> hidden) {
  ModelSpec s;
  s.hidden = std::move(hidden);
  return s;
}

std::vector<float> params_of(const ModelSpec& spec, std::uint64_t seed) {
  const ParamLayout layout(spec);
  std::vector<float> p(layout.size);
  init_params(spec, layout, seed, p.data());
  return p;
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

}  // namespace

TEST(ExportCommand, WritesBothFilesAndRefusesAnUnwritableOutputBeforeAnyWork) {
  test::TempDir dir;
  const ModelSpec spec = spec_of({16});
  save_model(dir / "m.mgpu", spec, params_of(spec, 2));
  const std::string data = " --data '" + test::data_dir() + "'";
  auto r = test::run_exe("export --model '" + (dir / "m.mgpu").string() + "' --onnx '" + (dir / "m.onnx").string() +
                         "' --safetensors '" + (dir / "m.safetensors").string() + "'" + data);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir / "m.onnx"));
  const SavedModel back = model_from_safetensors(read_safetensors(dir / "m.safetensors"), {}, "m");
  EXPECT_EQ(back.spec.hidden, spec.hidden);

  // An output in a missing directory fails before the model is even read (it does not exist).
  r = test::run_exe("export --model '" + (dir / "none.mgpu").string() + "' --onnx '" + (dir / "no/such/m.onnx").string() +
                    "'" + data);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, (dir / "no/such/m.onnx").string() + ": cannot write the ONNX model here"));
  r = test::run_exe("export --model '" + (dir / "m.mgpu").string() + "'" + data);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.out, "give --onnx FILE, --safetensors FILE or both"));
  r = test::run_exe("export --model '" + (dir / "m.mgpu").string() + "' --onnx x.onnx --input rgb" + data);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.out, "--input: expected one of pixels | images, got 'rgb'"));
}

TEST(ImportCommand, ImportsAndRefusesNamingTheTensorWithExitCodes) {
  test::TempDir dir;
  const ModelSpec spec = spec_of({16});
  SafeTensors st = model_to_safetensors(spec, params_of(spec, 2), {});
  st.metadata = {{"format", "pt"}};
  auto write = [&](const std::string& name, const SafeTensors& f) {
    const auto bytes = encode_safetensors(f);
    std::ofstream(dir / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return "'" + (dir / name).string() + "'";
  };
  const std::string good = write("good.safetensors", st);
  const std::string out = "'" + (dir / "m.mgpu").string() + "'";
  auto r = test::run_exe("import --safetensors " + good + " --hidden 16 --activation relu --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const SavedModel m = load_model(dir / "m.mgpu");
  EXPECT_EQ(m.params, params_of(spec, 2));

  r = test::run_exe("import --safetensors " + good + " --out " + out);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_TRUE(contains(r.out, "--hidden:"));
  r = test::run_exe("import --safetensors " + good + " --hidden 16 --activation swish --out " + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(contains(r.out, "--activation: expected one of relu | sigmoid | tanh | gelu, got 'swish'"));

  SafeTensors missing = st;
  missing.tensors.pop_back();
  r = test::run_exe("import --safetensors " + write("missing.safetensors", missing) +
                    " --hidden 16 --activation relu --out " + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "missing tensor '2.bias'"));
  r = test::run_exe("import --safetensors " + good + " --hidden 16 --activation relu --out '" +
                    (dir / "no/such/m.mgpu").string() + "'");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "cannot save the model here"));
}
