// pipeline/spec_readers.hpp — the two spellings' readers and the checks both share. Private
// to pipeline/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "common/yaml_reader.hpp"
#include "pipeline/spec.hpp"

namespace cohort::pipeline {

// KFP v2's compiled IR (kfp_spec.cpp).
Pipeline read_kfp(const yaml::Reader& r, const YAML::Node& doc);
// cohort's native YAML (native_spec.cpp).
Pipeline read_native(const yaml::Reader& r, const YAML::Node& doc);

// What every pipeline must hold, whatever its spelling: upstream tasks and outputs that
// exist, placeholders that name an input or output, no cycle. Orders the tasks upstream
// first and fills in each task's `after`.
void check_and_order(const yaml::Reader& r, Pipeline& pipeline);

// A YAML value as the text a command line receives: a scalar as written, anything else as
// JSON (KFP passes lists and structs that way).
std::string value_text(const YAML::Node& node);

}  // namespace cohort::pipeline
