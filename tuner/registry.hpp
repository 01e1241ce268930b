// tuner/registry.hpp — the tables that name the algorithms (sampler.cpp) and the stoppers
// (stopper.cpp): looked up by name, and listed in messages. Private to tuner/.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.hpp"

namespace cohort::tuner {

// The entry called `name`, or nullptr.
template <class Info>
const Info* find_named(const std::vector<const Info*>& table, std::string_view name) {
  auto it = std::find_if(table.begin(), table.end(), [&](const Info* info) { return info->name == name; });
  return it == table.end() ? nullptr : *it;
}

// "grid, random, …": every name, in the table's order.
template <class Info>
std::string names_of(const std::vector<const Info*>& table) {
  return join(table, ", ", [](const Info* info) { return std::string(info->name); });
}

}  // namespace cohort::tuner
