// mnist_gpu: the command-line entry point (all logic lives in run_cli).
#include "mnist_gpu/cli.hpp"

int main(int argc, char** argv) { return mnist_gpu::run_cli(argc, argv); }
