#include "collectives/resnet50.hpp"

#include <functional>
#include <numeric>

namespace cohort::collectives::detail {

std::size_t ParameterShape::count() const {
  return std::accumulate(dims.begin(), dims.end(), std::size_t{1}, std::multiplies<>());
}

std::vector<ParameterShape> resnet50_parameters() {
  std::vector<ParameterShape> params;
  auto conv = [&](const std::string& name, std::size_t out, std::size_t in, std::size_t k) {
    params.push_back({name + ".weight", {out, in, k, k}});
  };
  auto batch_norm = [&](const std::string& name, std::size_t channels) {
    params.push_back({name + ".weight", {channels}});
    params.push_back({name + ".bias", {channels}});
  };
  conv("conv1", 64, 3, 7);
  batch_norm("bn1", 64);
  // Bottleneck blocks: 1×1 reduce, 3×3, 1×1 expand (×4); the first block of each stage
  // projects its input with a 1×1 downsample.
  const std::size_t blocks[4] = {3, 4, 6, 3};
  const std::size_t widths[4] = {64, 128, 256, 512};
  std::size_t in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const std::size_t width = widths[stage];
    const std::size_t out = width * 4;
    for (std::size_t b = 0; b < blocks[stage]; ++b) {
      const std::string prefix = "layer" + std::to_string(stage + 1) + "." + std::to_string(b);
      conv(prefix + ".conv1", width, in, 1);
      batch_norm(prefix + ".bn1", width);
      conv(prefix + ".conv2", width, width, 3);
      batch_norm(prefix + ".bn2", width);
      conv(prefix + ".conv3", out, width, 1);
      batch_norm(prefix + ".bn3", out);
      if (b == 0) {
        conv(prefix + ".downsample.0", out, in, 1);
        batch_norm(prefix + ".downsample.1", out);
      }
      in = out;
    }
  }
  params.push_back({"fc.weight", {1000, 2048}});
  params.push_back({"fc.bias", {1000}});
  return params;
}

}  // namespace cohort::collectives::detail
