// mnist_gpu command line (placeholder until the trainer lands).
int main() { return 0; }
