// Fuzzing the JSON binding (common/json.hpp): a document is parsed or refused with an
// error, and what is parsed writes out (compact and indented) and reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/error.hpp"
#include "common/json.hpp"

using namespace cohort;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json::Value value;
  try {
    value = json::parse(text, "fuzz");
  } catch (const Error&) {
    return 0;
  }
  if (json::parse(json::write(value), "compact") != value) std::abort();
  if (json::parse(json::write(value, 2), "indented") != value) std::abort();
  return 0;
}
