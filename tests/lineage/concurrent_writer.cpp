// One of many processes writing to one lineage store at once, as the tasks of an array job
// do: `lineage_writer DB WRITER COUNT` records COUNT launches, each reading the one shared
// dataset, writing a model of its own, in the one shared experiment. Every write is also
// made twice, as a writer that retries after a timeout would. Exits 1 with the error on
// stderr when any write fails.
#include <cstdlib>
#include <iostream>
#include <string>

#include "common/error.hpp"
#include "lineage/store.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: lineage_writer DB WRITER COUNT\n";
    return 2;
  }
  using namespace cohort::lineage;
  const std::string writer = argv[2];
  const int count = std::atoi(argv[3]);
  try {
    Store store = Store::open(argv[1]);
    for (int i = 0; i < count; ++i) {
      for (int again = 0; again < 2; ++again) {
        store.transaction([&] {
          const std::string name = "w" + writer + "-" + std::to_string(i);
          auto experiment = store.put_context({.type = "Experiment", .name = "shared"});
          auto data = store.put_artifact({.type = "Dataset", .uri = "/data/shared.csv", .digest = "sha256:d"});
          auto run = store.put_execution({.type = "Launch",
                                          .name = name,
                                          .state = "COMPLETE",
                                          .properties = {{"writer", std::stoll(writer)}, {"i", std::int64_t{i}}}});
          auto model = store.put_artifact({.type = "Model", .uri = "/models/" + name});
          store.put_event(run, data, EventType::input, "data");
          store.put_event(run, model, EventType::output, "model");
          store.associate(experiment, run);
          store.attribute(experiment, model);
        });
      }
    }
  } catch (const cohort::Error& e) {
    std::cerr << "lineage_writer " << writer << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
