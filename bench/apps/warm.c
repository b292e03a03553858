// warm MIB SECONDS ADDRESS: an app with a slow warm-up. Builds a MIB MiB heap and
// keeps working on it until SECONDS have passed since it started, then serves
// HTTP 200, one short response per connection, on ADDRESS: `tcp:PORT` (127.0.0.1)
// or `unix:@NAME` (an abstract unix socket: CRIU 4.1.1 cannot dump TCP sockets on
// Linux >= 6.16, checkpoint-restore/criu#2705).
#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: warm MIB SECONDS tcp:PORT|unix:@NAME\n");
    return 2;
  }
  double started = now_s();
  signal(SIGPIPE, SIG_IGN);  // a client that gave up must not end the server
  size_t words = (size_t)strtoull(argv[1], NULL, 10) * 1024 * 1024 / sizeof(uint64_t);
  double seconds = atof(argv[2]);
  uint64_t *heap = malloc(words * sizeof *heap);
  if (!heap) return perror("malloc"), 1;
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    heap[i] = x;
  }
  // "init work": passes over the heap until the warm-up time is used up
  const size_t block = 1 << 20;
  for (size_t at = 0; now_s() - started < seconds; at = (at + block) % words) {
    size_t end = at + block < words ? at + block : words;
    for (size_t i = at; i < end; i++) heap[i] = heap[i] * 6364136223846793005ULL + 1442695040888963407ULL;
  }
  int server;
  if (strncmp(argv[3], "tcp:", 4) == 0) {
    server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3] + 4))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0) return perror("bind"), 1;
  } else if (strncmp(argv[3], "unix:@", 6) == 0 && strlen(argv[3] + 6) < sizeof(((struct sockaddr_un *)0)->sun_path) - 1) {
    server = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t length = strlen(argv[3] + 6);
    memcpy(addr.sun_path + 1, argv[3] + 6, length);  // sun_path[0] = 0: abstract
    if (bind(server, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + length)) < 0) return perror("bind"), 1;
  } else {
    return fprintf(stderr, "bad address %s: expected tcp:PORT or unix:@NAME\n", argv[3]), 2;
  }
  if (listen(server, 64) < 0) return perror("listen"), 1;
  printf("listening after %.1f s\n", now_s() - started);
  fflush(stdout);
  static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
  for (;;) {
    int client = accept(server, NULL, NULL);
    if (client < 0) continue;
    char request[4096];
    if (read(client, request, sizeof request) > 0) (void)!write(client, reply, sizeof reply - 1);
    close(client);
  }
}
