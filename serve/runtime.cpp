#include "serve/runtime.hpp"

#include <cstdlib>
#include <string>

#include "common/text.hpp"

namespace cohort::serve {

void Model::run_async(const std::vector<Tensor>& inputs, Done done) {
  Result result;
  try {
    result.outputs = run(inputs);
  } catch (...) {
    result.failure = std::current_exception();
  }
  done(std::move(result));
}

int placement_threads(int fallback) {
  if (const char* cpus = std::getenv("COHORT_CPUS"); cpus && *cpus) {
    long long count = 0;
    for (auto piece : split(cpus, ',')) {
      const auto dash = piece.find('-');
      auto first = parse_integer(piece.substr(0, dash), 0, 1 << 20);
      auto last = dash == std::string_view::npos ? first : parse_integer(piece.substr(dash + 1), 0, 1 << 20);
      if (!first || !last || *last < *first) return fallback;
      count += *last - *first + 1;
    }
    if (count > 0) return static_cast<int>(count);
  }
  if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && *omp) {
    if (auto n = parse_integer(omp, 1, 4096)) return static_cast<int>(*n);
  }
  return fallback;
}

}  // namespace cohort::serve
