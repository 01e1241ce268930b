// dashboard/assets.hpp — the stylesheet and script the pages use, built into the binary from
// dashboard/assets/ (embed.cmake), so that a dashboard reached through a tunnel or a proxy
// needs nothing but itself. Private to dashboard/.
#pragma once

#include <span>
#include <string_view>

namespace cohort::dashboard {

struct Asset {
  std::string_view name;  // the file's name under dashboard/assets/
  std::string_view body;
};

std::span<const Asset> assets();

}  // namespace cohort::dashboard
