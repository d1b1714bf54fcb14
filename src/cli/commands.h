#pragma once

namespace slm::cli {
int run(int argc, char** argv);
}
