// heap MIB: fills MIB MiB with non-zero pseudo-random bytes, prints
// "ready BYTES FILL_MS" on stdout (FILL_MS: first touch of fresh memory plus the
// xorshift, a rough bound for anything that rebuilds the heap, a restore included),
// then sleeps until a signal ends it. The app that part 2 checkpoints.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: heap MIB\n");
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  size_t words = (size_t)strtoull(argv[1], NULL, 10) * 1024 * 1024 / sizeof(uint64_t);
  uint64_t *heap = malloc(words * sizeof *heap);
  if (!heap) {
    perror("malloc");
    return 1;
  }
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < words; i++) {  // xorshift64: never zero, incompressible
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    heap[i] = x;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("ready %zu %.1f\n", words * sizeof *heap, (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
  fflush(stdout);
  for (;;) pause();
}
