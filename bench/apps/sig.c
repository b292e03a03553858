// Signal forwarding latency, measured with CLOCK_MONOTONIC on both sides.
//   sig recv FIFO N        the app: SIGUSR1 blocked, takes N signals with sigwaitinfo
//                          and writes each receive time (ns) as a line into FIFO.
//   sig send PID FIFO N    the sender: N times, notes the time, sends SIGUSR1 to PID
//                          (the init), reads the app's receive time; prints one JSON
//                          line {"latency_us":[...]}. One signal in flight at a time.
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int recv_mode(const char *fifo, long n) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, NULL);
  FILE *out = fopen(fifo, "w");  // blocks until the sender opens it: SIGUSR1 is blocked by then
  if (!out) return perror(fifo), 1;
  for (long i = 0; i < n; i++) {
    if (sigwaitinfo(&set, NULL) < 0) return perror("sigwaitinfo"), 1;
    fprintf(out, "%lld\n", now_ns());
    fflush(out);
  }
  fclose(out);
  return 0;
}

static int send_mode(pid_t pid, const char *fifo, long n) {
  FILE *in = fopen(fifo, "r");
  if (!in) return perror(fifo), 1;
  usleep(100 * 1000);  // the init may still be settling after starting the app
  printf("{\"latency_us\":[");
  for (long i = 0; i < n; i++) {
    usleep(1000);
    long long sent = now_ns();
    if (kill(pid, SIGUSR1) < 0) return perror("kill"), 1;
    long long received;
    if (fscanf(in, "%lld", &received) != 1) return fprintf(stderr, "the app stopped answering after %ld signals\n", i), 1;
    printf("%s%.1f", i ? "," : "", (received - sent) / 1e3);
  }
  printf("]}\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "recv") == 0) return recv_mode(argv[2], atol(argv[3]));
  if (argc == 5 && strcmp(argv[1], "send") == 0) return send_mode(atoi(argv[2]), argv[3], atol(argv[4]));
  fprintf(stderr, "usage: sig recv FIFO N | sig send PID FIFO N\n");
  return 2;
}
