"""A client of the Open Inference Protocol (KServe V2) over HTTP/REST, written from the
published specification alone and independent of the server under test: KServe's
"Open Inference Protocol" REST API (health, metadata and inference endpoints, the JSON
request and response shapes, the error object) and Triton's binary tensor data extension
(`Inference-Header-Content-Length`, `binary_data_size`, `binary_data`,
`binary_data_output`, tensors as little-endian row-major bytes after the JSON header).
NumPy arrays in and out, as tritonclient's HTTP client takes them; one keep-alive
connection, as a client in a loop holds it.
"""
import http.client
import json
import urllib.parse

import numpy

# The specification's tensor datatypes and the NumPy types that hold them.
DATATYPES = {
    "BOOL": numpy.bool_, "UINT8": numpy.uint8, "UINT16": numpy.uint16, "UINT32": numpy.uint32,
    "UINT64": numpy.uint64, "INT8": numpy.int8, "INT16": numpy.int16, "INT32": numpy.int32,
    "INT64": numpy.int64, "FP16": numpy.float16, "FP32": numpy.float32, "FP64": numpy.float64,
}


def datatype_of(array):
    for name, kind in DATATYPES.items():
        if array.dtype == numpy.dtype(kind):
            return name
    raise ValueError(f"no V2 datatype holds {array.dtype}")


class V2Error(Exception):
    """A non-200 answer: its status and the `error` member the specification requires."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class InferResult:
    def __init__(self, head, binary):
        self.head = head
        self.model_name, self.model_version = head["model_name"], head.get("model_version")
        self.id = head.get("id")
        self._outputs = {}
        offset = 0
        for out in head["outputs"]:
            kind = numpy.dtype(DATATYPES[out["datatype"]]).newbyteorder("<")
            size = out.get("parameters", {}).get("binary_data_size")
            if size is not None:
                values = numpy.frombuffer(binary[offset:offset + size], dtype=kind)
                offset += size
            else:
                values = numpy.array(out["data"], dtype=kind).ravel()  # flat, or nested row-major
            self._outputs[out["name"]] = values.reshape(out["shape"])
        if offset != len(binary):
            raise V2Error(200, f"{len(binary) - offset} byte(s) of binary data that no output claims")

    def as_numpy(self, name):
        return self._outputs[name]

    def names(self):
        return list(self._outputs)


class InferenceServerClient:
    def __init__(self, url, token=None, timeout=60):
        parts = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def close(self):
        self.connection.close()

    def _request(self, method, path, body=None, headers=None):
        self.connection.request(method, path, body=body, headers={**self.headers, **(headers or {})})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            try:
                message = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                raise V2Error(response.status, f"an error without the specification's error object: {data!r}")
            raise V2Error(response.status, message)
        return response, data

    def _get(self, path):
        return json.loads(self._request("GET", path)[1])

    @staticmethod
    def _model_path(model, version):
        path = "/v2/models/" + urllib.parse.quote(model, safe="")
        return path + ("/versions/" + urllib.parse.quote(str(version), safe="") if version else "")

    def _ok(self, path):
        try:
            self._request("GET", path)
            return True
        except V2Error as e:
            if e.status in (400, 404, 503):  # not ready, or no such model: an answer, not a failure
                return False
            raise

    def is_server_live(self):
        return self._ok("/v2/health/live")

    def is_server_ready(self):
        return self._ok("/v2/health/ready")

    def is_model_ready(self, model, version=None):
        return self._ok(self._model_path(model, version) + "/ready")

    def server_metadata(self):
        return self._get("/v2")

    def model_metadata(self, model, version=None):
        return self._get(self._model_path(model, version))

    def infer(self, model, inputs, outputs=None, version=None, request_id=None, binary=False):
        """inputs: {name: numpy array}; outputs: names to ask for (None: all of them);
        binary: send the inputs and ask for the outputs as binary tensor data."""
        head = {"inputs": []}
        raw = []
        for name, array in inputs.items():
            array = numpy.ascontiguousarray(array)
            tensor = {"name": name, "shape": list(array.shape), "datatype": datatype_of(array)}
            if binary:
                data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
                tensor["parameters"] = {"binary_data_size": len(data)}
                raw.append(data)
            else:
                tensor["data"] = array.ravel().tolist()
            head["inputs"].append(tensor)
        if request_id is not None:
            head["id"] = request_id
        if outputs is not None:
            head["outputs"] = [{"name": n, "parameters": {"binary_data": binary}} for n in outputs]
        elif binary:
            head["parameters"] = {"binary_data_output": True}
        text = json.dumps(head).encode()
        headers = {"Content-Type": "application/json"}
        if binary:
            headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(text))}
        response, data = self._request("POST", self._model_path(model, version) + "/infer",
                                       body=text + b"".join(raw), headers=headers)
        length = response.getheader("Inference-Header-Content-Length")
        length = int(length) if length is not None else len(data)
        return InferResult(json.loads(data[:length]), data[length:])
