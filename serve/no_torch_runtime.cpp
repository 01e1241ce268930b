// Built when CMake found no libtorch: the server runs, and says that it has no runtime.
#include "serve/runtime.hpp"

namespace cohort::serve {

std::unique_ptr<Runtime> torchscript_runtime() { return nullptr; }

}  // namespace cohort::serve
