// collectives/resnet50.hpp — ResNet-50's parameter tensors, the gradient list the
// `--grads resnet50` benchmark reduces.
//
// Private to collectives/ (namespace detail): users include communicator.hpp and bucketing.hpp.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace cohort::collectives::detail {

struct ParameterShape {
  std::string name;               // torchvision's parameter name, e.g. "layer1.0.conv1.weight"
  std::vector<std::size_t> dims;  // e.g. {64, 64, 1, 1}
  std::size_t count() const;
};

// torchvision's resnet50() parameters in forward order: 161 tensors, 25,557,032 elements.
std::vector<ParameterShape> resnet50_parameters();

}  // namespace cohort::collectives::detail
