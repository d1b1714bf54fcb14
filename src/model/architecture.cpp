// The architecture registry (model/architecture.h). Filled before main() by the static registrars
// of the arch_*.cpp files; read-only afterwards.
#include "model/architecture.h"

#include <algorithm>
#include <memory>

#include "core/error.h"

namespace slm {
namespace {

// A function-local static, so that registrars in other files may run in any order.
std::vector<ArchSpec>& registry() {
  static std::vector<ArchSpec> specs;
  return specs;
}

}  // namespace

void register_architecture(ArchSpec spec) {
  auto& specs = registry();
  for (const ArchSpec& s : specs)
    if (s.name == spec.name) throw Error("architecture '" + spec.name + "' registered twice");
  specs.push_back(std::move(spec));
}

const ArchSpec* find_architecture(std::string_view name) {
  for (const ArchSpec& s : registry())
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for (const ArchSpec& s : registry()) names.push_back(s.name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace slm
