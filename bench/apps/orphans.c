// orphans N: makes N orphans for PID 1 to reap and measures how long PID 1 takes.
// A middle process vforks N children that exit at once, then exits itself: its N
// zombies are re-parented to PID 1 together. The clock starts when the middle
// process is gone and stops when PID 1 has no child left but this one. Prints one
// JSON line {"n","fork_ms","reap_ms"}.
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// Children of PID 1 other than us, from /proc/1/task/*/children (zombies included).
static long other_children_of_init(void) {
  static char buf[1 << 20];
  long count = 0;
  DIR *tasks = opendir("/proc/1/task");
  if (!tasks) return -1;
  struct dirent *entry;
  while ((entry = readdir(tasks))) {
    if (entry->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/1/task/%s/children", entry->d_name);
    FILE *file = fopen(path, "r");
    if (!file) continue;
    size_t n = fread(buf, 1, sizeof buf - 1, file);
    fclose(file);
    buf[n] = 0;
    for (char *token = strtok(buf, " \n"); token; token = strtok(NULL, " \n")) {
      if (atol(token) != getpid()) count++;
    }
  }
  closedir(tasks);
  return count;
}

int main(int argc, char **argv) {
  if (argc != 2 || getpid() == 1) {
    fprintf(stderr, "usage: orphans N (as a child of the PID 1 under test)\n");
    return 2;
  }
  long n = atol(argv[1]);
  double started = now_ms();
  pid_t middle = fork();
  if (middle < 0) return perror("fork"), 1;
  if (middle == 0) {
    for (long i = 0; i < n; i++) {
      pid_t child = vfork();
      if (child == 0) _exit(0);
      if (child < 0) return perror("fork"), 1;
    }
    usleep(50 * 1000);  // let the last children exit too
    _exit(0);
  }
  int status;
  waitpid(middle, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return fprintf(stderr, "middle process failed\n"), 1;
  double orphaned = now_ms();
  long left;
  while ((left = other_children_of_init()) > 0) {
    if (now_ms() - orphaned > 60000) return fprintf(stderr, "PID 1 left %ld children unreaped after 60 s\n", left), 1;
    usleep(200);
  }
  if (left < 0) return perror("/proc/1/task"), 1;
  printf("{\"n\":%ld,\"fork_ms\":%.3f,\"reap_ms\":%.3f}\n", n, orphaned - started - 50, now_ms() - orphaned);
  return 0;
}
