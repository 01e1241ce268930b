// Fuzzing the sweep journal (tuner/journal.hpp): any text, a journal cut short or damaged
// included, gives a state; damaged records are counted and skipped, never fatal.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tuner/journal.hpp"

using namespace cohort;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const tuner::JournalState state = tuner::parse_journal(text);
  for (std::size_t i = 0; i < state.trials.size(); ++i) {
    if (state.trials[i].id != static_cast<int>(i) || state.find(static_cast<int>(i)) != &state.trials[i]) std::abort();
  }
  if (state.counted() < 0 || state.damaged_records < 0) std::abort();
  state.best(tuner::Objective{});
  return 0;
}
