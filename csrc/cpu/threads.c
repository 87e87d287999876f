/*
 * threads.c — fork/join of the attention workers: pthreads on POSIX, Win32
 * threads on Windows.  Threads are started per call and joined before it
 * returns, so calls from several threads at once share nothing and the
 * caller's thread count is exactly what runs (no pool to oversubscribe).
 */
#include <stdlib.h>

#include "cpu_attn.h"

#if defined(_WIN32)
#include <process.h>
#include <windows.h>
#else
#include <pthread.h>
#endif

typedef struct csa__thread_arg {
  csa__cpu_worker_fn fn;
  void *ctx;
  int ith;
} csa__thread_arg;

#if defined(_WIN32)
typedef HANDLE csa__thread;
static unsigned __stdcall csa__thread_main(void *p) {
  csa__thread_arg *a = (csa__thread_arg *)p;
  a->fn(a->ctx, a->ith);
  return 0;
}
static int csa__thread_start(csa__thread *t, csa__thread_arg *a) {
  uintptr_t h = _beginthreadex(NULL, 0, csa__thread_main, a, 0, NULL);
  *t = (HANDLE)h;
  return h != 0;
}
static void csa__thread_join(csa__thread t) {
  WaitForSingleObject(t, INFINITE);
  CloseHandle(t);
}
#else
typedef pthread_t csa__thread;
static void *csa__thread_main(void *p) {
  csa__thread_arg *a = (csa__thread_arg *)p;
  a->fn(a->ctx, a->ith);
  return NULL;
}
static int csa__thread_start(csa__thread *t, csa__thread_arg *a) {
  return pthread_create(t, NULL, csa__thread_main, a) == 0;
}
static void csa__thread_join(csa__thread t) { pthread_join(t, NULL); }
#endif

void csa__cpu_run_parallel(int nth, csa__cpu_worker_fn fn, void *ctx) {
  csa__thread *threads = NULL;
  csa__thread_arg *args = NULL;
  unsigned char *started = NULL;
  if (nth > 1) {
    threads = (csa__thread *)malloc(sizeof(*threads) * (size_t)nth);
    args = (csa__thread_arg *)malloc(sizeof(*args) * (size_t)nth);
    started = (unsigned char *)calloc((size_t)nth, 1);
    if (threads == NULL || args == NULL || started == NULL)
      nth = 1; /* no memory for bookkeeping: the caller does all the work */
  }
  for (int i = 1; i < nth; i++) {
    args[i].fn = fn;
    args[i].ctx = ctx;
    args[i].ith = i;
    started[i] = (unsigned char)csa__thread_start(&threads[i], &args[i]);
  }
  fn(ctx, 0);
  for (int i = 1; i < nth; i++)
    if (started[i])
      csa__thread_join(threads[i]);
  free(threads);
  free(args);
  free(started);
}
