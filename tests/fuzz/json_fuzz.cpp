// Fuzzing the JSON binding (common/json.hpp) over RapidJSON: a document is parsed or
// refused with an error, and what is parsed writes out (compact and indented), reads back
// the same, and writes out again byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
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
  const std::string compact = json::write(value);
  const json::Value again = json::parse(compact, "compact");
  if (again != value || json::write(again) != compact) std::abort();
  if (json::parse(json::write(value, 2), "indented") != value) std::abort();
  return 0;
}
