list(APPEND CSA_CORE_SOURCES
  ${CSA_ROOT}/csrc/core/status.c
  ${CSA_ROOT}/csrc/core/dtype.c
  ${CSA_ROOT}/csrc/core/validate.c
  ${CSA_ROOT}/csrc/core/dispatch.c)
