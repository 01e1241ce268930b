#include "common/error.hpp"

#include <cstring>

namespace cohort {

std::string system_message(const std::string& what, int errnum) {
  char buf[256];
  // GNU strerror_r returns the message, which may or may not live in buf.
  const char* text = strerror_r(errnum, buf, sizeof buf);
  return what + ": " + text;
}

}  // namespace cohort
