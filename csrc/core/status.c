/*
 * status.c — the status table (name, message) and the thread-local detail
 * message behind csa_errmsg().
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

#if defined(_MSC_VER)
#define CSA__THREAD_LOCAL __declspec(thread)
#else
#define CSA__THREAD_LOCAL _Thread_local
#endif

/* 512 bytes holds the longest detail we format (argument name, two shapes,
 * a cu_seqlens index and values) with room to spare; longer text is cut. */
static CSA__THREAD_LOCAL char csa__errbuf[512];

const char *csa_status_name(int status) {
  switch (status) {
#define CSA__NAME_CASE(name, val, msg) \
  case CSA_##name:                            \
    return "CSA_" #name;
    CSA_STATUS_MAP(CSA__NAME_CASE)
#undef CSA__NAME_CASE
  default:
    return "CSA_UNKNOWN";
  }
}

const char *csa_strerror(int status) {
  switch (status) {
#define CSA__MSG_CASE(name, val, msg) \
  case CSA_##name:                           \
    return msg;
    CSA_STATUS_MAP(CSA__MSG_CASE)
#undef CSA__MSG_CASE
  default:
    return "unknown status";
  }
}

const char *csa_errmsg(void) { return csa__errbuf; }

void csa_clear_error(void) { csa__errbuf[0] = '\0'; }

int csa__error(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(csa__errbuf, sizeof csa__errbuf, fmt, ap);
  va_end(ap);
  return status;
}
