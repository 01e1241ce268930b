#include "collectives/operation.hpp"

#include <cstdlib>
#include <string>

#include "common/error.hpp"

namespace cohort::collectives::detail {

std::chrono::seconds collectives_timeout() {
  if (const char* text = std::getenv("COHORT_COLLECTIVES_TIMEOUT")) {
    char* end = nullptr;
    const long seconds = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || seconds <= 0) {
      throw input_error(std::string("COHORT_COLLECTIVES_TIMEOUT=") + text +
                        ": expected a whole number of seconds greater than 0");
    }
    return std::chrono::seconds(seconds);
  }
  return std::chrono::minutes(30);
}

}  // namespace cohort::collectives::detail
