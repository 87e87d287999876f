# setup_link: portable case table, path checks and git exclude, plus one
# file-system layer per platform family.
list(APPEND CSA_CORE_SOURCES
  ${CSA_ROOT}/csrc/link/relpath.c
  ${CSA_ROOT}/csrc/link/path.c
  ${CSA_ROOT}/csrc/link/git_exclude.c
  ${CSA_ROOT}/csrc/link/setup_link.c)
if(WIN32)
  list(APPEND CSA_CORE_SOURCES ${CSA_ROOT}/csrc/link/win/fs.c)
else()
  list(APPEND CSA_CORE_SOURCES ${CSA_ROOT}/csrc/link/posix/fs.c)
endif()
