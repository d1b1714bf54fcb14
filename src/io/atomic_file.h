// Atomic file writes: data goes to a temporary file beside the target, is fsynced, then renamed
// over the target, so a kill at any moment leaves either the old file or the new one.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace slm {

// Calls write(FILE*) on a temporary file, then fsyncs and renames it to `path`. On any error
// (including an exception from `write`) the temporary file is removed and slm::Error is thrown.
void write_file_atomic(const std::string& path, const std::function<void(std::FILE*)>& write);
void write_file_atomic(const std::string& path, std::string_view contents);

// Reads a whole file; throws slm::Error naming the path on failure.
std::string read_file(const std::string& path);

}  // namespace slm
