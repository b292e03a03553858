// The few things libuv cannot do for an init process: become a subreaper, reap
// children that libuv did not spawn (without ever touching the ones it did), move
// the PID counter of the namespace past a floor, and tell who is at the other end
// of a unix socket.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <node_api.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_value errno_value;
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_CHILD_SUBREAPER)", errno);
  return NULL;
}

static napi_value is_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  int flag = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_GET_CHILD_SUBREAPER)", errno);
  napi_value result;
  napi_get_boolean(env, flag != 0, &result);
  return result;
}

// setName(name): this thread's name, which is the process's /proc/PID/comm for
// the main thread (what ps and top show): Node calls its main thread
// "node-MainThread", and an init should be seen as itself.
static napi_value set_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char name[16];  // TASK_COMM_LEN, the terminating NUL included
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok || len == 0) {
    napi_throw_type_error(env, NULL, "setName(name): name must be a non-empty string");
    return NULL;
  }
  if (prctl(PR_SET_NAME, name, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_NAME)", errno);
  return NULL;
}

// Marks every fd >= 3 close-on-exec, so that children get only 0-2 even when our
// own parent leaked descriptors to us.
static napi_value cloexec_from_3(napi_env env, napi_callback_info info) {
  (void)info;
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) return throw_errno(env, "close_range", errno);
  return NULL;
}

#define MAX_CHILDREN 65536

static int contains(const int32_t *list, size_t n, int32_t pid) {
  for (size_t i = 0; i < n; i++)
    if (list[i] == pid) return 1;
  return 0;
}

static int compare_pids(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

// Collects our children from /proc/self/task/*/children (zombies included), sorted
// and without duplicates. (A linear duplicate check per PID made a pass over
// 10,000 zombies quadratic: ~50 million comparisons.)
static size_t list_children(int32_t *out, size_t cap) {
  size_t n = 0;
  DIR *tasks = opendir("/proc/self/task");
  if (!tasks) return 0;
  struct dirent *entry;
  while ((entry = readdir(tasks)) != NULL && n < cap) {
    if (entry->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", entry->d_name);
    FILE *file = fopen(path, "re");
    if (!file) continue;
    int pid;
    while (n < cap && fscanf(file, "%d", &pid) == 1) out[n++] = pid;
    fclose(file);
  }
  closedir(tasks);
  qsort(out, n, sizeof *out, compare_pids);
  size_t unique = 0;
  for (size_t i = 0; i < n; i++)
    if (unique == 0 || out[unique - 1] != out[i]) out[unique++] = out[i];
  return unique;
}

static napi_value status_object(napi_env env, pid_t pid, int status) {
  napi_value obj, value, null_value;
  napi_create_object(env, &obj);
  napi_get_null(env, &null_value);
  napi_create_int32(env, pid, &value);
  napi_set_named_property(env, obj, "pid", value);
  if (WIFEXITED(status)) {
    napi_create_int32(env, WEXITSTATUS(status), &value);
    napi_set_named_property(env, obj, "code", value);
    napi_set_named_property(env, obj, "signal", null_value);
  } else {
    napi_create_int32(env, WTERMSIG(status), &value);
    napi_set_named_property(env, obj, "code", null_value);
    napi_set_named_property(env, obj, "signal", value);
  }
  return obj;
}

// reap(exclude: number[]): {pid, code, signal}[]
// waitpid(WNOHANG) on each child that is not in `exclude` (libuv's children).
static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t n_exclude = 0;
  bool is_array = false;
  if (argc >= 1) napi_is_array(env, argv[0], &is_array);
  if (is_array) napi_get_array_length(env, argv[0], &n_exclude);
  int32_t *exclude = calloc(n_exclude + 1, sizeof *exclude);
  int32_t *children = calloc(MAX_CHILDREN, sizeof *children);
  if (!exclude || !children) {
    free(exclude);
    free(children);
    return throw_errno(env, "reap", ENOMEM);
  }
  for (uint32_t i = 0; i < n_exclude; i++) {
    napi_value element;
    napi_get_element(env, argv[0], i, &element);
    napi_get_value_int32(env, element, &exclude[i]);
  }
  size_t n_children = list_children(children, MAX_CHILDREN);
  napi_value result;
  napi_create_array(env, &result);
  uint32_t n_reaped = 0;
  for (size_t i = 0; i < n_children; i++) {
    if (contains(exclude, n_exclude, children[i])) continue;
    int status;
    pid_t pid = waitpid(children[i], &status, WNOHANG | __WALL);
    if (pid > 0) napi_set_element(env, result, n_reaped++, status_object(env, pid, status));
  }
  free(exclude);
  free(children);
  return result;
}

// One child that exits at once; returns its PID (or -1 with errno set).
// clone(CLONE_VM | CLONE_VFORK) with exit signal 0: the child borrows our address
// space (no copy of Node's page tables: a few microseconds a round) and its exit
// sends us no SIGCHLD. The SIGCHLD matters: thousands of them in a row made libuv
// (1.52, Node 26) now and then miss the SIGCHLD of the app it spawned next, whose
// exit then went unnoticed. The child runs no C code at all, only the exit system
// call, so sharing our stack and memory cannot hurt us; we are suspended until it
// is gone (CLONE_VFORK), then reap it with __WALL (needed for a child whose exit
// signal is not SIGCHLD).
static pid_t spawn_and_exit(void) {
  long pid;
#if defined(__x86_64__)
  register long flags __asm__("rdi") = CLONE_VM | CLONE_VFORK;
  register long stack __asm__("rsi") = 0;
  register long parent_tid __asm__("rdx") = 0;
  register long child_tid __asm__("r10") = 0;
  register long tls __asm__("r8") = 0;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "mov %[exit_nr], %%eax\n\t"
      "xor %%edi, %%edi\n\t"
      "syscall\n\t"
      "1:\n\t"
      : "=a"(pid)
      : "0"((long)SYS_clone), "r"(flags), "r"(stack), "r"(parent_tid), "r"(child_tid), "r"(tls), [exit_nr] "i"(SYS_exit)
      : "rcx", "r11", "memory");
#elif defined(__aarch64__)
  register long x0 __asm__("x0") = CLONE_VM | CLONE_VFORK;
  register long x1 __asm__("x1") = 0;
  register long x2 __asm__("x2") = 0;
  register long x3 __asm__("x3") = 0;
  register long x4 __asm__("x4") = 0;
  register long x8 __asm__("x8") = SYS_clone;
  __asm__ volatile(
      "svc #0\n\t"
      "cbnz x0, 1f\n\t"
      "mov x8, %[exit_nr]\n\t"
      "svc #0\n\t"
      "1:\n\t"
      : "+r"(x0)
      : "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x8), [exit_nr] "i"(SYS_exit)
      : "memory");
  pid = x0;
#else
#error "spawn_and_exit: only x86_64 and aarch64 are supported"
#endif
  if (pid < 0) {
    errno = (int)-pid;
    return -1;
  }
  while (waitpid((pid_t)pid, NULL, __WALL) < 0 && errno == EINTR) {
  }
  return (pid_t)pid;
}

// raisePidFloor(floor): makes the next PID handed out in our PID namespace at
// least `floor` without writing ns_last_pid (read-only /proc/sys): children that
// exit at once until the namespace's PID counter passes floor - 1.
// (clone3 with set_tid does not help here: the kernel allocates that one PID with
// idr_alloc and leaves the cyclic cursor, which the next fork uses, where it was.)
// Returns {method: "fork"|"none", lastPid}.
static napi_value raise_pid_floor(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t floor_pid = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &floor_pid) != napi_ok || floor_pid < 2) {
    napi_throw_type_error(env, NULL, "raisePidFloor(floor): floor must be an integer >= 2");
    return NULL;
  }
  // The children inherit this mask: no signal handler of ours can ever run on the
  // stack they share with us (a signal to our process group reaches them too).
  sigset_t all, saved;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &saved);  // this thread only (glibc), like pthread_sigmask
  const char *method = "none";
  int err = 0;
  pid_t last = spawn_and_exit();
  if (last < 0) err = errno;
  // Bounded by pid_max: the counter wraps at most once.
  for (long tries = 0; err == 0 && last < floor_pid - 1 && tries < 4194304; tries++) {
    method = "fork";
    pid_t pid = spawn_and_exit();
    if (pid < 0) {
      err = errno;
      break;
    }
    if (pid < last) break;  // wrapped around pid_max: the floor is unreachable
    last = pid;
  }
  sigprocmask(SIG_SETMASK, &saved, NULL);
  if (err != 0) return throw_errno(env, "clone", err);
  napi_value obj, value;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, method, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, obj, "method", value);
  napi_create_int32(env, last, &value);
  napi_set_named_property(env, obj, "lastPid", value);
  return obj;
}

// peerPid(fd): the PID of the process that connected the unix socket `fd`
// (SO_PEERCRED, as seen from our PID namespace; 0 when it is outside of it).
static napi_value peer_pid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "peerPid(fd): fd must be an integer >= 0");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  napi_value result;
  napi_create_int32(env, cred.pid, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setChildSubreaper", NULL, set_child_subreaper, NULL, NULL, NULL, napi_default, NULL},
      {"isChildSubreaper", NULL, is_child_subreaper, NULL, NULL, NULL, napi_default, NULL},
      {"setName", NULL, set_name, NULL, NULL, NULL, napi_default, NULL},
      {"cloexecFrom3", NULL, cloexec_from_3, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_default, NULL},
      {"raisePidFloor", NULL, raise_pid_floor, NULL, NULL, NULL, napi_default, NULL},
      {"peerPid", NULL, peer_pid, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
