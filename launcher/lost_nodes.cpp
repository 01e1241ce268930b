#include "launcher/lost_nodes.hpp"

#include <sstream>

#include "common/text.hpp"

namespace cohort::launcher {
namespace {

// The value of `key` ("State=") among a line's space-separated fields; empty when absent.
std::string field(const std::string& line, const std::string& key) {
  std::istringstream fields(line);
  std::string f;
  while (fields >> f) {
    if (f.rfind(key, 0) == 0) return f.substr(key.size());
  }
  return {};
}

bool has_flag(const std::string& state, const std::string& flag) {
  for (auto part : split(state, '+')) {
    if (part == flag) return true;
  }
  return false;
}

}  // namespace

std::vector<LostNode> lost_nodes(const std::string& text) {
  std::vector<LostNode> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    LostNode n{field(line, "NodeName="), field(line, "State="), {}};
    if (n.name.empty() || n.state.empty()) continue;
    const bool down = n.state == "DOWN" || n.state.rfind("DOWN+", 0) == 0;
    if (!down && !has_flag(n.state, "NOT_RESPONDING")) continue;
    // The reason is free text, the last field of the line: everything after "Reason=".
    if (auto at = line.find(" Reason="); at != std::string::npos) n.reason = line.substr(at + 8);
    while (!n.reason.empty() && (n.reason.back() == ' ' || n.reason.back() == '\r')) n.reason.pop_back();
    out.push_back(std::move(n));
  }
  return out;
}

std::string describe(const std::vector<LostNode>& lost) {
  std::string out = lost.size() == 1 ? "Slurm lost node " : "Slurm lost nodes ";
  for (size_t i = 0; i < lost.size(); ++i) {
    const LostNode& n = lost[i];
    if (i) out += ", ";
    out += n.name + " (";
    out += has_flag(n.state, "NOT_RESPONDING") ? "not responding: its slurmd does not answer" : "down";
    if (!n.reason.empty() && n.reason != "(null)") out += "; Slurm's reason: " + n.reason;
    out += ")";
  }
  return out;
}

}  // namespace cohort::launcher
