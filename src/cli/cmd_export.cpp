// slm export CHECKPOINT -o MODEL.gguf [--dtype f32|f16|q8_0]: a training checkpoint (or an
// F32/F16 llama GGUF) to a GGUF model file any GGUF runtime loads (train/export.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf.h"
#include "train/export.h"

namespace slm::cli {
namespace {

struct ExportFlags {
  std::string input, output, dtype = "f32", name;
};

void run_export(const ExportFlags& f) {
  ExportOptions opt;
  if (f.dtype == "f32") opt.dtype = DType::F32;
  else if (f.dtype == "f16") opt.dtype = DType::F16;
  else if (f.dtype == "q8_0") opt.dtype = DType::Q8_0;
  else throw Error("--dtype must be f32, f16 or q8_0, got '" + f.dtype + "'");
  opt.name = f.name;
  auto src = GgufFile::open(f.input);
  try {
    export_model(*src, f.output, opt);
  } catch (const Error& e) {
    throw Error(f.input + ": " + e.what());
  }
  std::printf("wrote %s (%s)\n", f.output.c_str(), f.dtype.c_str());
}

}  // namespace

void register_export(CLI::App& app) {
  auto f = std::make_shared<ExportFlags>();
  auto* cmd = app.add_subcommand("export", "Write a training checkpoint as a GGUF model (llama tensor names and keys)");
  cmd->add_option("checkpoint", f->input, "checkpoint.gguf from `slm train` (or an F32/F16 llama GGUF)")->required();
  cmd->add_option("-o,--output", f->output, "output model file")->required();
  cmd->add_option("--dtype", f->dtype, "matrix type: f32, f16 or q8_0 (norms stay f32)");
  cmd->add_option("--name", f->name, "general.name of the model");
  cmd->callback([f] { run_export(*f); });
}

}  // namespace slm::cli
