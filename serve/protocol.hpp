// serve/protocol.hpp — the Open Inference Protocol's (KServe V2) JSON: an inference
// request read against a model's signature, and the responses written.
//
//   InferRequest r = read_infer_request(json::parse(body), config);   // HttpError 400 if wrong
//   auto outputs = model.run(r.inputs);
//   std::string reply = json::write(infer_response(name, version, r, outputs));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/json.hpp"
#include "serve/repository.hpp"
#include "serve/tensor.hpp"

namespace cohort::serve {

// An error with the HTTP status Triton answers it with: 400 bad request, 401 without a
// token, 404 unknown model or version, 413 too large, 503 not ready or overloaded, 500 the
// model failed. The message is the body's "error".
class HttpError : public Error {
 public:
  // `retry_after_s`: for 503, when to ask again (the Retry-After header); 0 for none.
  HttpError(int status, std::string message, int retry_after_s = 0)
      : Error(std::move(message), status < 500 ? ErrorKind::input : ErrorKind::failure),
        status_(status),
        retry_after_s_(retry_after_s) {}
  int status() const noexcept { return status_; }
  int retry_after_s() const noexcept { return retry_after_s_; }

 private:
  int status_;
  int retry_after_s_;
};

struct InferRequest {
  json::Value id;                    // echoed when given; null when not
  std::vector<Tensor> inputs;        // in the config's order, checked against it
  std::vector<std::string> outputs;  // asked for by name; empty: all
  std::vector<std::string> binary_outputs;  // of those, the ones to send as binary data
  bool all_binary = false;  // "parameters": {"binary_data_output": true}: every output binary
};

// Reads a V2 inference request: every declared input exactly once, with its datatype, a
// shape the config allows and as many elements (flat or nested `data`) as the shape has.
// With the binary tensor extension, an input with "parameters": {"binary_data_size": N}
// takes its N bytes from `binary` (what follows the JSON), in the order of the inputs; the
// sizes must add up to all of it. Anything else is an HttpError 400 naming the input and
// what would be right.
InferRequest read_infer_request(const json::Value& body, const ModelConfig& config, std::string_view binary = {});

// {"model_name", "model_version", "id"?, "outputs": [{name, datatype, shape, data}]}, with
// the outputs asked for (all when none were), in the model's order. An output asked for as
// binary has "parameters": {"binary_data_size": N} instead of data, and its bytes are
// appended to `binary` in the order of the outputs.
json::Value infer_response(const std::string& model, std::int64_t version, const InferRequest& request,
                           const std::vector<Tensor>& outputs, std::string* binary = nullptr);

// {"name", "versions", "platform", "inputs": [...], "outputs": [...]}: a model's metadata.
// A variable dimension and an unknown shape are -1; with batching, the batch dimension
// leads as -1.
json::Value model_metadata(const ModelConfig& config, const std::vector<std::int64_t>& versions,
                           const std::string& platform);

// The element at `at` of a tensor of `dtype`, as JSON writes it: BOOL as true/false,
// integers exact, floating point as the shortest decimal that reads back the same.
json::Value element_json(DType dtype, const std::byte* at);

}  // namespace cohort::serve
