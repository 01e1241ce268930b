// serve/lineage_record.hpp — what `cohort serve start` records in the lineage store: an
// Execution "Serve" reading each model file it serves (an Artifact "Model"), RUNNING while
// it listens and COMPLETE once drained, so that a model's history shows where it was served.
#pragma once

#include <string>
#include <vector>

#include "serve/repository.hpp"

namespace cohort::serve {

// Records the server at `url` as serving `models`; returns the execution's name for
// record_serving_end ("" when nothing was recorded). Never throws: lineage never stops a server.
std::string record_serving_start(const std::vector<RepositoryModel>& models, const std::string& url) noexcept;
void record_serving_end(const std::string& name, const std::vector<RepositoryModel>& models,
                        const std::string& url) noexcept;

}  // namespace cohort::serve
