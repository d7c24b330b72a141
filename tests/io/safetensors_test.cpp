// safetensors reader and checkpoint directory tests: every fixture checkpoint (data-driven), a
// round trip through a test-only writer, and one test per kind of bad input.
#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "internvl/error.h"
#include "io/tensor_convert.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using internvl::CheckpointError;
using internvl::io::Checkpoint;
using internvl::io::DType;
using internvl::io::SafetensorsFile;
using internvl::io::TensorView;
using nlohmann::json;

namespace {

// ---- helpers -------------------------------------------------------------------------------

// A fresh, empty directory per test under gtest's temp dir (mkdtemp: unique, nothing to clean
// first). POSIX calls rather than std::filesystem: libtorch.so exports its own, ABI-incompatible
// std::filesystem functions (fs::remove_all segfaults when linked against it).
std::string test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string tmpl = ::testing::TempDir();
  if (!tmpl.empty() && tmpl.back() != '/') tmpl += '/';
  tmpl += std::string("internvl_io_") + info->test_suite_name() + "." + info->name() + ".XXXXXX";
  const char* made = ::mkdtemp(tmpl.data());
  if (made == nullptr) ADD_FAILURE() << "mkdtemp failed for " << tmpl;
  return tmpl;
}

void make_dir(const std::string& path) { ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path; }

void truncate_file(const std::string& path, uint64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0) << path;
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// Raw file: 8-byte length, header text, data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  write_bytes(path, le64(header.size()) + header + data);
}

struct TestTensor {
  std::string name;
  std::string dtype;  // safetensors dtype string
  std::vector<int64_t> shape;
  std::string bytes;
};

// Test-only writer laying tensors out contiguously in the given order, header padded to 8.
void write_safetensors(const std::string& path, const std::vector<TestTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';
  write_raw(path, text, data);
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

// Passes when fn throws CheckpointError whose message contains every one of `needles`.
::testing::AssertionResult ThrowsCheckpointError(const std::function<void()>& fn,
                                                 const std::vector<std::string>& needles) {
  try {
    fn();
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    for (const auto& n : needles) {
      if (what.find(n) == std::string::npos) {
        return ::testing::AssertionFailure() << "message lacks \"" << n << "\": " << what;
      }
    }
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a different exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// Opens `path` as a single file, expecting a CheckpointError naming the file (and `extra`).
::testing::AssertionResult BadFile(const std::string& path, std::vector<std::string> extra = {}) {
  extra.push_back(fs::path(path).filename().string());
  auto r = ThrowsCheckpointError([&] { SafetensorsFile f(path); }, extra);
  if (!r) return r;
  // The directory-level loader reports the same failure.
  return ThrowsCheckpointError([&] { Checkpoint c(path); }, extra);
}

std::optional<DType> dtype_from_torch_name(const std::string& name) {
  static const std::map<std::string, DType> table = {
      {"bool", DType::BOOL},      {"uint8", DType::U8},      {"int8", DType::I8},     {"int16", DType::I16},
      {"uint16", DType::U16},     {"int32", DType::I32},     {"uint32", DType::U32},  {"int64", DType::I64},
      {"uint64", DType::U64},     {"float16", DType::F16},   {"bfloat16", DType::BF16}, {"float32", DType::F32},
      {"float64", DType::F64},    {"float8_e4m3fn", DType::F8_E4M3}, {"float8_e5m2", DType::F8_E5M2}};
  const auto it = table.find(name);
  if (it != table.end()) return it->second;
  for (auto d : {DType::BOOL, DType::U8, DType::I8, DType::I16, DType::U16, DType::I32, DType::U32, DType::I64,
                 DType::U64, DType::F16, DType::BF16, DType::F32, DType::F64, DType::F8_E4M3, DType::F8_E5M2}) {
    if (name == internvl::io::dtype_name(d)) return d;
  }
  return std::nullopt;
}

// The header of a safetensors file, parsed independently of the reader under test.
json read_header(const std::string& path, uint64_t* data_start = nullptr) {
  std::ifstream in(path, std::ios::binary);
  unsigned char len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  if (data_start) *data_start = 8 + n;
  return json::parse(text);
}

std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> model_files(const std::string& fixture) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(internvl::testing::fixture_path(fixture))) {
    const auto name = entry.path().filename().string();
    if (name.rfind("model", 0) == 0 && entry.path().extension() == ".safetensors") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// ---- fixtures (data-driven) ----------------------------------------------------------------

TEST(SafetensorsFixtures, FixturesExist) { ASSERT_FALSE(internvl::testing::fixture_names().empty()) << internvl::testing::fixtures_dir(); }

TEST(SafetensorsFixtures, CheckpointNamesMatchIndexOrHeader) {
  const auto fixtures = internvl::testing::fixture_names();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const fs::path dir = internvl::testing::fixture_path(fixture);
    Checkpoint ckpt(dir.string());
    const auto names = ckpt.names();
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    const std::set<std::string> got(names.begin(), names.end());

    std::set<std::string> expected;
    if (fs::exists(dir / "model.safetensors.index.json")) {
      const auto index = internvl::testing::read_json((dir / "model.safetensors.index.json").string());
      for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) expected.insert(it.key());
    } else {
      const auto header = read_header((dir / "model.safetensors").string());
      for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() != "__metadata__") expected.insert(it.key());
      }
    }
    EXPECT_EQ(got, expected);
    EXPECT_FALSE(got.empty());
  }
}

TEST(SafetensorsFixtures, ViewsMatchHeadersAndBytes) {
  const auto fixtures = internvl::testing::fixture_names();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    for (const auto& file : model_files(fixture)) {
      SCOPED_TRACE(file);
      SafetensorsFile st(file);
      uint64_t data_start = 0;
      const auto header = read_header(file, &data_start);
      const auto bytes = read_file_bytes(file);
      std::size_t count = 0;
      for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
          for (auto m = it->begin(); m != it->end(); ++m) EXPECT_EQ(st.metadata().at(m.key()), m->get<std::string>());
          continue;
        }
        ++count;
        ASSERT_TRUE(st.contains(it.key())) << it.key();
        const TensorView& v = st.tensor(it.key());
        EXPECT_EQ(v.name, it.key());
        EXPECT_STREQ(internvl::io::dtype_name(v.dtype), (*it)["dtype"].get<std::string>().c_str());
        EXPECT_EQ(v.shape, (*it)["shape"].get<std::vector<int64_t>>());
        const auto begin = (*it)["data_offsets"][0].get<uint64_t>();
        const auto end = (*it)["data_offsets"][1].get<uint64_t>();
        ASSERT_EQ(v.nbytes, end - begin);
        EXPECT_EQ(static_cast<std::size_t>(v.numel()) * internvl::io::dtype_size(v.dtype), v.nbytes);
        EXPECT_EQ(0, std::memcmp(v.data, bytes.data() + data_start + begin, v.nbytes)) << it.key();
      }
      EXPECT_EQ(st.names().size(), count);
      // A single shard opens as a checkpoint too.
      EXPECT_EQ(Checkpoint(file).names(), st.names());
    }
  }
}

TEST(SafetensorsFixtures, ReferenceTensorsHaveDeclaredDtypeAndShape) {
  const auto fixtures = internvl::testing::fixture_names();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto reference = internvl::testing::fixture_reference(fixture);
    SafetensorsFile st((fs::path(internvl::testing::fixture_path(fixture)) / "reference.safetensors").string());
    ASSERT_TRUE(reference.contains("tensors"));
    std::size_t n = 0;
    for (auto it = reference["tensors"].begin(); it != reference["tensors"].end(); ++it, ++n) {
      SCOPED_TRACE(it.key());
      ASSERT_TRUE(st.contains(it.key()));
      const auto& v = st.tensor(it.key());
      const auto want = dtype_from_torch_name((*it)["dtype"].get<std::string>());
      ASSERT_TRUE(want.has_value()) << (*it)["dtype"];
      EXPECT_EQ(v.dtype, *want);
      EXPECT_EQ(v.shape, (*it)["shape"].get<std::vector<int64_t>>());
      if (n < 4) {  // and the ATen conversion agrees (a few per fixture to stay quick)
        const auto t = internvl::testing::reference_tensor(fixture, it.key());
        EXPECT_EQ(t.sizes(), c10::IntArrayRef(v.shape));
        EXPECT_EQ(t.scalar_type(), internvl::io::to_scalar_type(v.dtype));
      }
    }
    EXPECT_GT(n, 0u);
  }
}

TEST(SafetensorsFixtures, Bf16ToFloat32IsExact) {
  const auto fixtures = internvl::testing::fixture_names();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    Checkpoint ckpt(internvl::testing::fixture_path(fixture));
    std::size_t checked = 0;
    for (const auto& name : ckpt.names()) {
      const auto& v = ckpt.tensor(name);
      if (v.dtype != DType::BF16) continue;
      SCOPED_TRACE(name);
      const auto f32 = internvl::io::to_tensor(v, at::kFloat);
      ASSERT_EQ(f32.scalar_type(), at::kFloat);
      ASSERT_EQ(f32.sizes(), c10::IntArrayRef(v.shape));
      ASSERT_TRUE(f32.is_contiguous());
      const auto* f_bits = static_cast<const uint32_t*>(f32.data_ptr());
      const auto* b_bits = reinterpret_cast<const uint16_t*>(v.data);
      for (int64_t i = 0; i < v.numel(); ++i) {
        ASSERT_EQ(f_bits[i], static_cast<uint32_t>(b_bits[i]) << 16) << "element " << i;
      }
      // Same dtype: an owned copy, bit-identical, not aliasing the map.
      const auto same = internvl::io::to_tensor(v, at::kBFloat16);
      EXPECT_NE(same.data_ptr(), static_cast<const void*>(v.data));
      EXPECT_EQ(0, std::memcmp(same.data_ptr(), v.data, v.nbytes));
      // The zero-copy view aliases the map.
      EXPECT_EQ(internvl::io::view_as_tensor(v).data_ptr(), static_cast<const void*>(v.data));
      if (++checked == 5) break;
    }
    EXPECT_GT(checked, 0u) << "no BF16 weights in " << fixture;
  }
}

// ---- round trip ----------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, AllDtypesScalarsAndEmpty) {
  const auto dir = test_dir();
  const auto path = dir + "/good.safetensors";
  const std::vector<double> f64 = {1.5, -2.25, 1e300};
  const std::vector<float> f32 = {1.f, -2.f, 3.5f, 0.f, -0.f, 6.f};
  const std::vector<int64_t> i64_scalar = {-1234567890123LL};
  const std::vector<uint64_t> u64 = {18446744073709551615ULL};
  const std::vector<int32_t> i32 = {-7, 7};
  const std::vector<uint32_t> u32 = {4000000000u};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x4049, 0x0000};  // 1, -2, 3.140625, 0
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3800, 0x7bff};    // 1, -2, 0.5, 65504
  const std::vector<int16_t> i16 = {-300, 300};
  const std::vector<uint16_t> u16 = {65535};
  const std::vector<int8_t> i8 = {-128, 127, 0};
  const std::vector<uint8_t> u8 = {0, 255};
  const std::vector<uint8_t> boolean = {1, 0, 1};
  const std::vector<uint8_t> f8 = {0x38, 0x40};  // e4m3: 1.0, 2.0
  // Widest first, as the format's writer does, so everything is aligned.
  const std::vector<TestTensor> tensors = {
      {"f64", "F64", {3}, bytes_of(f64)},
      {"i64_scalar", "I64", {}, bytes_of(i64_scalar)},
      {"u64", "U64", {1, 1}, bytes_of(u64)},
      {"f32", "F32", {2, 3}, bytes_of(f32)},
      {"f32_empty", "F32", {0, 4}, ""},
      {"i32", "I32", {2}, bytes_of(i32)},
      {"u32", "U32", {1}, bytes_of(u32)},
      {"bf16", "BF16", {2, 2}, bytes_of(bf16)},
      {"f16", "F16", {4}, bytes_of(f16)},
      {"i16", "I16", {2}, bytes_of(i16)},
      {"u16", "U16", {1}, bytes_of(u16)},
      {"i8", "I8", {3}, bytes_of(i8)},
      {"u8", "U8", {2}, bytes_of(u8)},
      {"bool", "BOOL", {3}, bytes_of(boolean)},
      {"f8", "F8_E4M3", {2}, bytes_of(f8)},
      {"f8b", "F8_E5M2", {1}, std::string(1, '\x3c')},  // e5m2 1.0
      {"u8_empty", "U8", {0}, ""},
  };
  write_safetensors(path, tensors, {{"format", "pt"}, {"note", "round trip"}});

  SafetensorsFile st(path);
  EXPECT_EQ(st.path(), path);
  EXPECT_EQ(st.metadata().size(), 2u);
  EXPECT_EQ(st.metadata().at("note"), "round trip");
  std::vector<std::string> expected_names;
  for (const auto& t : tensors) expected_names.push_back(t.name);
  std::sort(expected_names.begin(), expected_names.end());
  EXPECT_EQ(st.names(), expected_names);
  for (const auto& t : tensors) {
    SCOPED_TRACE(t.name);
    const auto& v = st.tensor(t.name);
    EXPECT_STREQ(internvl::io::dtype_name(v.dtype), t.dtype.c_str());
    EXPECT_EQ(v.shape, t.shape);
    EXPECT_EQ(v.nbytes, t.bytes.size());
    EXPECT_EQ(0, std::memcmp(v.data, t.bytes.data(), t.bytes.size()));
    const auto owned = internvl::io::to_tensor(v, internvl::io::to_scalar_type(v.dtype));
    EXPECT_EQ(owned.sizes(), c10::IntArrayRef(t.shape));
    EXPECT_EQ(static_cast<std::size_t>(owned.nbytes()), t.bytes.size());
    if (!t.bytes.empty()) EXPECT_EQ(0, std::memcmp(owned.data_ptr(), t.bytes.data(), t.bytes.size()));
  }
  EXPECT_EQ(st.tensor("i64_scalar").numel(), 1);
  EXPECT_EQ(st.tensor("f32_empty").numel(), 0);
  EXPECT_EQ(internvl::io::to_tensor(st.tensor("i64_scalar"), at::kLong).item<int64_t>(), -1234567890123LL);
  EXPECT_EQ(internvl::io::to_tensor(st.tensor("i64_scalar"), at::kLong).dim(), 0);

  // Value conversions to float32.
  const auto as_f32 = [&](const char* name) { return internvl::io::to_tensor(st.tensor(name), at::kFloat); };
  EXPECT_TRUE(at::equal(as_f32("bf16"), at::tensor({1.f, -2.f, 3.140625f, 0.f}).view({2, 2})));
  EXPECT_TRUE(at::equal(as_f32("f16"), at::tensor({1.f, -2.f, 0.5f, 65504.f})));
  EXPECT_TRUE(at::equal(as_f32("f8"), at::tensor({1.f, 2.f})));
  EXPECT_TRUE(at::equal(as_f32("f8b"), at::tensor({1.f})));
  EXPECT_TRUE(at::equal(as_f32("i8"), at::tensor({-128.f, 127.f, 0.f})));
  EXPECT_TRUE(at::equal(internvl::io::to_tensor(st.tensor("bool"), at::kBool), at::tensor({1, 0, 1}).to(at::kBool)));
  EXPECT_EQ(as_f32("f32_empty").sizes(), c10::IntArrayRef({0, 4}));
  // float32 -> bfloat16 conversion rounds as ATen does.
  EXPECT_TRUE(at::equal(internvl::io::to_tensor(st.tensor("f32"), at::kBFloat16),
                        at::tensor(f32).view({2, 3}).to(at::kBFloat16)));

  Checkpoint ckpt(path);
  EXPECT_EQ(ckpt.names(), expected_names);
  EXPECT_EQ(ckpt.path(), path);
  EXPECT_TRUE(ckpt.contains("bf16"));
  EXPECT_FALSE(ckpt.contains("nope"));
  EXPECT_TRUE(ThrowsCheckpointError([&] { ckpt.tensor("nope"); }, {"nope", "good.safetensors"}));
  EXPECT_TRUE(ThrowsCheckpointError([&] { st.tensor("nope"); }, {"nope", "good.safetensors"}));
}

TEST(SafetensorsRoundTrip, EmptyHeaderNoMetadataAndUnpaddedHeader) {
  const auto dir = test_dir();
  write_raw(dir + "/empty.safetensors", "{}", "");
  SafetensorsFile empty(dir + "/empty.safetensors");
  EXPECT_TRUE(empty.names().empty());
  EXPECT_TRUE(empty.metadata().empty());

  // 3-byte-aligned header: data misaligned for F32; to_tensor must still read it correctly.
  const std::vector<float> values = {1.f, 2.f, 3.f};
  std::string header = R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  while ((8 + header.size()) % 4 != 3) header += ' ';
  write_raw(dir + "/misaligned.safetensors", header, bytes_of(values));
  SafetensorsFile st(dir + "/misaligned.safetensors");
  EXPECT_TRUE(at::equal(internvl::io::to_tensor(st.tensor("x"), at::kFloat), at::tensor(values)));
  EXPECT_TRUE(at::equal(internvl::io::to_tensor(st.tensor("x"), at::kDouble), at::tensor(values).to(at::kDouble)));

  // Zero-size tensors at shared offsets are fine (they touch no bytes).
  write_raw(dir + "/empties.safetensors",
            R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"e":{"dtype":"F32","shape":[0],"data_offsets":[2,2]},)"
            R"("f":{"dtype":"I16","shape":[0,3],"data_offsets":[2,2]},"g":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}})",
            std::string("\x01\x02", 2));
  SafetensorsFile empties(dir + "/empties.safetensors");
  EXPECT_EQ(empties.names().size(), 4u);
}

// ---- directories and shards ----------------------------------------------------------------

void write_index(const std::string& dir, const json& weight_map) {
  write_bytes(dir + "/model.safetensors.index.json",
              json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump());
}

TEST(CheckpointDirectory, ShardedWithExtraTensorAndSingleFile) {
  const auto dir = test_dir();
  const std::vector<float> one = {1.f};
  write_safetensors(dir + "/s1.safetensors", {{"a", "F32", {1}, bytes_of(one)}, {"extra", "F32", {1}, bytes_of(one)}});
  write_safetensors(dir + "/s2.safetensors", {{"b", "F32", {1}, bytes_of(one)}, {"c", "F32", {1}, bytes_of(one)}});
  write_index(dir, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}, {"c", "s2.safetensors"}});
  Checkpoint ckpt(dir);
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b", "c", "extra"}));
  EXPECT_EQ(ckpt.tensor("extra").numel(), 1);
  EXPECT_EQ(ckpt.path(), dir);

  // Without an index, model.safetensors is used.
  const auto dir2 = dir + "/single";
  make_dir(dir2);
  write_safetensors(dir2 + "/model.safetensors", {{"z", "F32", {1}, bytes_of(one)}});
  EXPECT_EQ(Checkpoint(dir2).names(), std::vector<std::string>{"z"});
}

// ---- bad input: one test per failure kind --------------------------------------------------

TEST(SafetensorsBadInput, ZeroSizeFile) {
  const auto path = test_dir() + "/zero.safetensors";
  write_bytes(path, "");
  EXPECT_THROW(SafetensorsFile{path}, CheckpointError);
  EXPECT_TRUE(BadFile(path, {"too small"}));
}

TEST(SafetensorsBadInput, FourByteFile) {
  const auto path = test_dir() + "/four.safetensors";
  write_bytes(path, "abcd");
  EXPECT_TRUE(BadFile(path, {"too small"}));
}

TEST(SafetensorsBadInput, HeaderLengthLargerThanFile) {
  const auto path = test_dir() + "/long_header.safetensors";
  write_bytes(path, le64(1000) + "{}");
  EXPECT_TRUE(BadFile(path, {"1000"}));
}

TEST(SafetensorsBadInput, HeaderLengthAboveCap) {
  const auto path = test_dir() + "/huge_header.safetensors";
  write_bytes(path, le64(SafetensorsFile::kMaxHeaderBytes + 1) + "{}");
  EXPECT_TRUE(BadFile(path, {"limit"}));
  write_bytes(path, le64(~0ULL) + "{}");  // would overflow 8 + N
  EXPECT_TRUE(BadFile(path, {"limit"}));
}

TEST(SafetensorsBadInput, InvalidJson) {
  const auto path = test_dir() + "/bad_json.safetensors";
  write_raw(path, R"({"a": {"dtype": "F32",)", "");
  EXPECT_TRUE(BadFile(path, {"JSON"}));
}

TEST(SafetensorsBadInput, JsonNotAnObject) {
  const auto path = test_dir() + "/array.safetensors";
  write_raw(path, "[1, 2, 3]", "");
  EXPECT_TRUE(BadFile(path, {"not an object"}));
  write_raw(path, R"({"a": 5})", "");
  EXPECT_TRUE(BadFile(path, {"'a'"}));
}

TEST(SafetensorsBadInput, UnknownDtype) {
  const auto path = test_dir() + "/dtype.safetensors";
  write_raw(path, R"({"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "F12"}));
  write_raw(path, R"({"w":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "dtype"}));
}

TEST(SafetensorsBadInput, NegativeOrNonIntegerShape) {
  const auto path = test_dir() + "/shape.safetensors";
  write_raw(path, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "");
  EXPECT_TRUE(BadFile(path, {"'w'", "negative"}));
  write_raw(path, R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'"}));
  write_raw(path, R"({"w":{"dtype":"F32","shape":3,"data_offsets":[0,12]}})", std::string(12, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "shape"}));
  // numel * size overflowing 64 bits
  write_raw(path, R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "");
  EXPECT_TRUE(BadFile(path, {"'w'", "overflow"}));
}

TEST(SafetensorsBadInput, OffsetsOutOfBounds) {
  const auto path = test_dir() + "/oob.safetensors";
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'"}));
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "data_offsets"}));
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'"}));
}

TEST(SafetensorsBadInput, BeginAfterEnd) {
  const auto path = test_dir() + "/reversed.safetensors";
  write_raw(path, R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "begin > end"}));
}

TEST(SafetensorsBadInput, ByteSizeNotNumelTimesDtypeSize) {
  const auto path = test_dir() + "/size.safetensors";
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})", std::string(16, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "16"}));
}

TEST(SafetensorsBadInput, OverlappingRanges) {
  const auto path = test_dir() + "/overlap.safetensors";
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            std::string(12, '\0'));
  EXPECT_TRUE(BadFile(path, {"'a'", "'b'", "overlap"}));
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
            std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"overlap"}));
}

TEST(SafetensorsBadInput, GappedRanges) {
  const auto path = test_dir() + "/gap.safetensors";
  // 4 unused bytes between the tensors.
  write_raw(path,
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
            std::string(12, '\0'));
  EXPECT_TRUE(BadFile(path, {"'a'", "'b'", "gap of 4 bytes"}));
  // The first tensor does not start at 0.
  write_raw(path, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"'a'", "gap"}));
}

TEST(SafetensorsBadInput, TrailingBytesAfterLastTensor) {
  const auto path = test_dir() + "/trailing.safetensors";
  write_raw(path, R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", std::string(5, '\0'));
  EXPECT_TRUE(BadFile(path, {"3 trailing bytes"}));
}

TEST(SafetensorsBadInput, DuplicateNamesInOneHeader) {
  const auto path = test_dir() + "/dup.safetensors";
  write_raw(path,
            R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            std::string(8, '\0'));
  EXPECT_TRUE(BadFile(path, {"'w'", "twice"}));
  // Repeated keys inside an entry are not tensor names and stay the parser's business.
  write_raw(path, R"({"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0'));
  EXPECT_NO_THROW(SafetensorsFile{path});
}

TEST(SafetensorsBadInput, TruncatedDataSection) {
  const auto dir = test_dir();
  const auto path = dir + "/truncated.safetensors";
  const std::vector<float> values(64, 1.f);
  write_safetensors(path, {{"a", "F32", {64}, bytes_of(values)}, {"b", "F32", {64}, bytes_of(values)}});
  const auto size = file_size(path);
  { SafetensorsFile ok(path); }  // intact file opens
  truncate_file(path, size - 1);
  EXPECT_TRUE(BadFile(path, {"'b'"}));
  truncate_file(path, size - 300);
  EXPECT_TRUE(BadFile(path));
}

TEST(SafetensorsBadInput, MetadataNotStringMap) {
  const auto path = test_dir() + "/meta.safetensors";
  write_raw(path, R"({"__metadata__":{"format":1}})", "");
  EXPECT_TRUE(BadFile(path, {"__metadata__"}));
  write_raw(path, R"({"__metadata__":["pt"]})", "");
  EXPECT_TRUE(BadFile(path, {"__metadata__"}));
}

TEST(SafetensorsBadInput, MissingFile) {
  const auto path = test_dir() + "/does_not_exist.safetensors";
  EXPECT_TRUE(BadFile(path));
}

TEST(SafetensorsBadInput, DirectoryWithoutModelFiles) {
  const auto dir = test_dir();
  write_bytes(dir + "/config.json", "{}");
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); },
                                    {"no model.safetensors or model.safetensors.index.json in", dir}));
  // A directory is not a safetensors file.
  EXPECT_TRUE(ThrowsCheckpointError([&] { SafetensorsFile f(dir); }, {dir}));
}

TEST(SafetensorsBadInput, IndexNamesMissingShard) {
  const auto dir = test_dir();
  const std::vector<float> one = {1.f};
  write_safetensors(dir + "/s1.safetensors", {{"a", "F32", {1}, bytes_of(one)}});
  write_index(dir, {{"a", "s1.safetensors"}, {"b", "s2-missing.safetensors"}});
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); },
                                    {"s2-missing.safetensors", "model.safetensors.index.json"}));
}

TEST(SafetensorsBadInput, IndexKeyAbsentFromShard) {
  const auto dir = test_dir();
  const std::vector<float> one = {1.f};
  write_safetensors(dir + "/s1.safetensors", {{"a", "F32", {1}, bytes_of(one)}});
  write_safetensors(dir + "/s2.safetensors", {{"b", "F32", {1}, bytes_of(one)}});
  write_index(dir, {{"a", "s1.safetensors"}, {"b", "s1.safetensors"}});
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); }, {"'b'", "s1.safetensors"}));
}

TEST(SafetensorsBadInput, DuplicateKeysAcrossShards) {
  const auto dir = test_dir();
  const std::vector<float> one = {1.f};
  write_safetensors(dir + "/s1.safetensors", {{"a", "F32", {1}, bytes_of(one)}, {"dup", "F32", {1}, bytes_of(one)}});
  write_safetensors(dir + "/s2.safetensors", {{"b", "F32", {1}, bytes_of(one)}, {"dup", "F32", {1}, bytes_of(one)}});
  write_index(dir, {{"a", "s1.safetensors"}, {"b", "s2.safetensors"}, {"dup", "s1.safetensors"}});
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); }, {"'dup'", "s1.safetensors", "s2.safetensors"}));
}

TEST(SafetensorsBadInput, BadIndexFile) {
  const auto dir = test_dir();
  write_bytes(dir + "/model.safetensors.index.json", "{not json");
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); }, {"model.safetensors.index.json"}));
  write_bytes(dir + "/model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); }, {"model.safetensors.index.json", "weight_map"}));
  write_bytes(dir + "/model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); }, {"model.safetensors.index.json", "'a'"}));
}

TEST(SafetensorsBadInput, IndexCannotNameFilesOutsideTheDirectory) {
  const auto dir = test_dir();
  const std::vector<float> one = {1.f};
  make_dir(dir + "/ckpt");
  // A valid shard one level up: reachable through "..", which must be refused.
  write_safetensors(dir + "/outside.safetensors", {{"a", "F32", {1}, bytes_of(one)}});
  for (const std::string shard : {"../outside.safetensors", "sub/../../outside.safetensors", "/etc/passwd", ".."}) {
    write_index(dir + "/ckpt", {{"a", shard}});
    EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir + "/ckpt"); }, {"'a'", "invalid shard"})) << shard;
  }
  write_index(dir + "/ckpt", {{"a", std::string("s1.safetensors\0x", 16)}});
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir + "/ckpt"); }, {"invalid shard"}));
}

TEST(SafetensorsBadInput, CorruptShardNamesShard) {
  const auto dir = test_dir();
  write_bytes(dir + "/s1.safetensors", "abc");
  write_index(dir, {{"a", "s1.safetensors"}});
  EXPECT_TRUE(ThrowsCheckpointError([&] { Checkpoint c(dir); }, {"s1.safetensors", "too small"}));
}

TEST(SafetensorsBadInput, EveryCorruptionIsCheckpointErrorOrValid) {
  // Mutate each header byte and truncate at every length: opening must either succeed with
  // in-bounds views or throw CheckpointError; nothing else (no other exception, no crash).
  const auto dir = test_dir();
  const auto good = dir + "/good.safetensors";
  const std::vector<float> f = {1.f, 2.f};
  const std::vector<int64_t> i = {3};
  write_safetensors(good, {{"a", "F32", {2}, bytes_of(f)}, {"b", "I64", {}, bytes_of(i)}});
  const std::string original = read_file_bytes(good);
  const auto path = dir + "/mutated.safetensors";
  write_bytes(path, original);
  std::size_t rejected = 0, accepted = 0;
  const auto attempt = [&](const std::string& bytes) {
    // Rewrite in place (open + O_TRUNC is slow on some filesystems), then cut to length.
    {
      std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    truncate_file(path, bytes.size());
    try {
      SafetensorsFile st(path);
      for (const auto& name : st.names()) {
        const auto& v = st.tensor(name);
        EXPECT_EQ(static_cast<std::size_t>(v.numel()) * internvl::io::dtype_size(v.dtype), v.nbytes);
        (void)internvl::io::to_tensor(v, at::kDouble);  // reads every byte of the view
      }
      ++accepted;
    } catch (const CheckpointError&) {
      ++rejected;
    }
  };
  for (std::size_t pos = 0; pos < original.size() - 12; ++pos) {
    for (char c : {'\0', '"', '9', '-', '}', '[', 'x'}) {
      std::string bytes = original;
      bytes[pos] = c;
      attempt(bytes);
    }
  }
  for (std::size_t len = 0; len < original.size(); ++len) attempt(original.substr(0, len));
  EXPECT_GT(rejected, 0u);
  EXPECT_GT(accepted, 0u);
}

// Resident bytes (smaps "Rss:") of the mapping that holds `address`; -1 if none does.
long resident_kib_of_mapping(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto target = reinterpret_cast<std::uintptr_t>(address);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2 && line.find(' ') > line.find('-')) {
      inside = target >= begin && target < end;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::stol(line.substr(4));
    }
  }
  return -1;
}

TEST(SafetensorsRoundTrip, ReleasedPagesLeaveTheProcessAndReadBackTheSame) {
  const auto dir = test_dir();
  const auto path = dir + "/big.safetensors";
  std::vector<float> values(1 << 20);  // 4 MiB: many whole pages
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 1009) - 500.0f;
  write_safetensors(path, {{"a", "F32", {static_cast<int64_t>(values.size())}, bytes_of(values)}});
  const SafetensorsFile file(path);
  const auto& view = file.tensor("a");
  const auto first = to_tensor(view, at::kFloat);  // touches every page
  const long before = resident_kib_of_mapping(view.data);
  ASSERT_GE(before, 4000) << "the mapping should hold the tensor's pages after a read";
  release_pages(view);
  const long after = resident_kib_of_mapping(view.data);
  EXPECT_LT(after, 64) << "released pages are still resident: " << after << " KiB";
  // Touched again, the pages come back from the file with the same bytes.
  EXPECT_TRUE(at::equal(to_tensor(view, at::kFloat), first));
  EXPECT_EQ(std::memcmp(first.data_ptr<float>(), values.data(), values.size() * sizeof(float)), 0);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
