// The TorchScript runtime: the one file of cohort that includes libtorch's headers.
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstring>
#include <mutex>

#include "common/error.hpp"
#include "serve/repository.hpp"
#include "serve/runtime.hpp"

namespace cohort::serve {
namespace {

namespace fs = std::filesystem;

c10::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::float16: return torch::kHalf;
    case DType::bfloat16: return torch::kBFloat16;
    case DType::float32: return torch::kFloat;
    case DType::float64: return torch::kDouble;
    case DType::int8: return torch::kChar;
    case DType::int16: return torch::kShort;
    case DType::int32: return torch::kInt;
    case DType::int64: return torch::kLong;
    case DType::uint8: return torch::kByte;
    case DType::bool8: return torch::kBool;
    default: break;
  }
  throw input_error("datatype " + std::string(datatype_name(dtype)) + " has no TorchScript tensor type");
}

DType dtype_of(c10::ScalarType t) {
  for (DType d : all_dtypes()) {
    try {
      if (scalar_type(d) == t) return d;
    } catch (const Error&) {
    }
  }
  throw Error(std::string("the model gave a tensor of type ") + c10::toString(t) + ", which V2 cannot carry");
}

Tensor to_tensor(const std::string& name, const at::Tensor& t) {
  at::Tensor cpu = t.to(torch::kCPU).contiguous();
  Tensor out{name, dtype_of(cpu.scalar_type()), Shape(cpu.sizes().begin(), cpu.sizes().end()), {}};
  out.data.resize(cpu.numel() * cpu.element_size());
  if (!out.data.empty()) std::memcpy(out.data.data(), cpu.data_ptr(), out.data.size());
  return out;
}

// The inputs and outputs a file declares, for a model served without a config: forward's
// parameter names, FP32 of any shape; outputs output__0, output__1, … as Triton names them.
void fill_signature(const torch::jit::Module& module, ModelConfig& config) {
  const auto& schema = module.get_method("forward").function().getSchema();
  if (config.inputs.empty()) {
    for (std::size_t i = 1; i < schema.arguments().size(); ++i) {
      config.inputs.push_back({schema.arguments()[i].name(), DType::float32, {}, true});
    }
  }
  if (config.outputs.empty()) {
    std::size_t n = 1;
    if (!schema.returns().empty()) {
      if (auto tuple = schema.returns()[0].type()->cast<c10::TupleType>()) n = tuple->elements().size();
    }
    for (std::size_t i = 0; i < n; ++i) config.outputs.push_back({"output__" + std::to_string(i), DType::float32, {}, true});
  }
}

class TorchModel : public Model {
 public:
  TorchModel(torch::jit::Module module, std::vector<std::string> outputs)
      : module_(std::move(module)), outputs_(std::move(outputs)) {}

  std::vector<Tensor> run(const std::vector<Tensor>& inputs) override {
    c10::InferenceMode guard;
    std::vector<torch::jit::IValue> args;
    for (const auto& in : inputs) {
      auto options = torch::TensorOptions().dtype(scalar_type(in.dtype));
      args.emplace_back(torch::from_blob(const_cast<std::byte*>(in.data.data()), in.shape, options));
    }
    torch::jit::IValue result;
    try {
      result = module_.forward(args);
    } catch (const std::exception& e) {
      throw Error("the model failed: " + first_line(e.what()));
    }
    return collect(result);
  }

 private:
  // What went wrong, in one line: an error raised inside TorchScript's interpreter opens with
  // a banner and a traceback, and ends with the exception itself.
  static std::string first_line(std::string text) {
    if (text.starts_with("The following operation failed in the TorchScript interpreter")) {
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
      text = text.substr(text.rfind('\n') + 1);
    }
    return text.substr(0, text.find('\n'));
  }

  std::vector<Tensor> collect(const torch::jit::IValue& result) const {
    std::vector<at::Tensor> tensors;
    if (result.isTensor()) {
      tensors.push_back(result.toTensor());
    } else if (result.isTuple()) {
      for (const auto& e : result.toTupleRef().elements()) {
        if (!e.isTensor()) throw Error("the model returned a tuple holding a " + e.tagKind() + ", not tensors");
        tensors.push_back(e.toTensor());
      }
    } else {
      throw Error("the model returned a " + result.tagKind() + "; expected a tensor or a tuple of tensors");
    }
    if (tensors.size() != outputs_.size()) {
      throw Error("the model returned " + std::to_string(tensors.size()) + " tensor(s); its config names " +
                  std::to_string(outputs_.size()) + " output(s)");
    }
    std::vector<Tensor> out;
    for (std::size_t i = 0; i < tensors.size(); ++i) out.push_back(to_tensor(outputs_[i], tensors[i]));
    return out;
  }

  torch::jit::Module module_;
  std::vector<std::string> outputs_;
};

class TorchRuntime : public Runtime {
 public:
  std::string platform() const override { return "pytorch_libtorch"; }

  std::unique_ptr<Model> load(const fs::path& file, ModelConfig& config) override {
    static std::once_flag threads;
    std::call_once(threads, [] {
      at::set_num_threads(placement_threads(1));
      at::set_num_interop_threads(1);
    });
    torch::jit::Module module;
    try {
      module = torch::jit::load(file.string(), torch::kCPU);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      throw input_error(file.string() + ": not a TorchScript model (" + what.substr(0, what.find('\n')) +
                        "); save one with torch.jit.script(model).save(path)");
    }
    module.eval();
    fill_signature(module, config);
    std::vector<std::string> outputs;
    for (const auto& o : config.outputs) outputs.push_back(o.name);
    return std::make_unique<TorchModel>(std::move(module), std::move(outputs));
  }
};

}  // namespace

std::unique_ptr<Runtime> torchscript_runtime() { return std::make_unique<TorchRuntime>(); }

}  // namespace cohort::serve
