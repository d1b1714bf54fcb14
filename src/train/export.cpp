#include "train/export.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/dtype.h"
#include "core/quant.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "model/model_metadata.h"
#include "train/train_model.h"

namespace slm {

void export_model(const GgufFile& src, const std::string& out_path, const ExportOptions& opt) {
  if (opt.dtype != DType::F32 && opt.dtype != DType::F16 && opt.dtype != DType::Q8_0)
    throw Error("export supports f32, f16 and q8_0");
  if (!src.has("tokenizer.ggml.model") || !src.has("tokenizer.ggml.tokens"))
    throw Error("the source has no tokenizer metadata (was it trained on random data?); a model "
                "file without a tokenizer cannot be used by runtimes");
  ModelConfig c = ModelConfig::from_gguf(src);
  if (c.arch != "llama") throw Error("export handles llama models; the source is '" + c.arch + "'");
  if (!opt.name.empty()) c.name = opt.name;
  if (c.name.empty()) c.name = "slm model";
  // ParamLayout names exactly the tensors a llama model of this shape has.
  const ParamLayout layout(c);
  GgufWriter w;
  set_model_metadata(w, c, opt.dtype);
  w.copy_metadata(src, "tokenizer.");
  std::vector<float> row;
  for (const ParamTensor& t : layout.tensors()) {
    const GgufTensorInfo* info = src.find_tensor(t.name);
    if (!info) throw Error("the source has no tensor '" + t.name + "'");
    if (info->shape != t.shape) throw Error("tensor '" + t.name + "' has an unexpected shape");
    const int64_t ne0 = t.shape[0], rows = t.size / ne0;
    DType type = t.is_matrix ? opt.dtype : DType::F32;
    if (type == DType::Q8_0 && ne0 % 32 != 0) type = DType::F16;
    const size_t src_row_bytes = info->nbytes / static_cast<size_t>(rows);
    const size_t dst_row_bytes = row_bytes(type, ne0);
    std::vector<uint8_t> data(dst_row_bytes * static_cast<size_t>(rows));
    row.resize(static_cast<size_t>(ne0));
    for (int64_t r = 0; r < rows; ++r) {
      dequantize_row(info->type, info->data + static_cast<size_t>(r) * src_row_bytes, row.data(), ne0);
      quantize_row(type, row.data(), data.data() + static_cast<size_t>(r) * dst_row_bytes, ne0);
    }
    w.add_tensor(t.name, type, t.shape, std::move(data));
  }
  w.write(out_path);
}

}  // namespace slm
