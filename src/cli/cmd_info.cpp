// slm info MODEL: metadata, architecture, parameter count and the tensor table of a GGUF file.
// Works on vocabulary-only files too (no architecture section then).
#include <cstdio>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/dtype.h"
#include "io/gguf.h"
#include "model/config.h"

namespace slm::cli {
namespace {

struct InfoFlags {
  std::string model;
  bool all_metadata = false;
};

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

void run_info(const InfoFlags& f) {
  auto file = GgufFile::open(f.model);
  std::printf("file: %s\n", f.model.c_str());
  std::printf("gguf version: %u, alignment: %llu, size: %s, %zu metadata keys, %zu tensors\n",
              file->version(), static_cast<unsigned long long>(file->alignment()),
              human_bytes(static_cast<double>(file->file_size())).c_str(), file->metadata().size(),
              file->tensors().size());

  std::printf("\nmetadata:\n");
  for (const auto& [key, value] : file->metadata()) {
    const size_t max_items = f.all_metadata ? SIZE_MAX : 8;
    std::string text = value.to_string(max_items);
    if (!f.all_metadata && text.size() > 160) text = text.substr(0, 157) + "...";
    // Control characters (newlines of chat templates) would break the one-line layout.
    for (char& c : text)
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    std::printf("  %-44s %s\n", key.c_str(), valid_utf8(text).c_str());
  }

  if (file->has("general.architecture") && !file->tensors().empty()) {
    const ModelConfig c = ModelConfig::from_gguf(*file);
    std::printf("\narchitecture: %s\n", c.arch.c_str());
    std::printf("  vocab %lld, dim %lld, layers %lld, heads %lld, kv heads %lld, head dim %lld, ffn %lld\n",
                (long long)c.n_vocab, (long long)c.dim, (long long)c.n_layers, (long long)c.n_heads,
                (long long)c.n_kv_heads, (long long)c.head_dim, (long long)c.ffn_dim);
    std::printf("  context %lld, rms eps %g, rope base %g (%s), qkv bias %s, output %s\n",
                (long long)c.ctx_len, c.norm_eps, c.rope_base,
                c.rope_style == RopeStyle::NeoX ? "neox halves" : "adjacent pairs",
                c.qkv_bias ? "yes" : "no", c.tied_output ? "tied to token_embd" : "separate");
  }

  int64_t params = 0;
  size_t bytes = 0;
  std::map<std::string, std::pair<int, size_t>> by_type;
  for (const auto& t : file->tensors()) {
    params += t.n_elements();
    bytes += t.nbytes;
    auto& e = by_type[std::string(dtype_name(t.type))];
    e.first++;
    e.second += t.nbytes;
  }
  if (!file->tensors().empty()) {
    std::printf("\nparameters: %lld (%.2f M), tensor data %s\n", (long long)params, params / 1e6,
                human_bytes(static_cast<double>(bytes)).c_str());
    std::printf("types:");
    for (const auto& [name, e] : by_type)
      std::printf(" %s x%d (%s)", name.c_str(), e.first, human_bytes(static_cast<double>(e.second)).c_str());
    std::printf("\n\ntensors:\n  %-32s %-6s %-20s %12s\n", "name", "type", "shape", "bytes");
    for (const auto& t : file->tensors())
      std::printf("  %-32s %-6s %-20s %12zu\n", t.name.c_str(), std::string(dtype_name(t.type)).c_str(),
                  shape_text(t.shape).c_str(), t.nbytes);
  }
}

}  // namespace

void register_info(CLI::App& app) {
  auto flags = std::make_shared<InfoFlags>();
  CLI::App* cmd = app.add_subcommand("info", "Show a GGUF file's metadata, architecture, parameters and tensors");
  cmd->add_option("model", flags->model, "GGUF file")->required();
  cmd->add_flag("--all", flags->all_metadata, "print long metadata values (arrays, templates) in full");
  cmd->callback([flags] { run_info(*flags); });
}

}  // namespace slm::cli
