/*
 * csa.h — public C API of comfy-sparse-attn.
 *
 * Variable-length ("varlen") attention over packed sequences, plus the
 * filesystem logic that stages a module inside an installed ComfyUI.
 *
 * Conventions
 *   - Every entry point returns an int status: CSA_OK (0) or a negative
 *     CSA_E* code.  Nothing here aborts, exits or longjmps.
 *   - After a failure, csa_errmsg() gives a human sentence naming the
 *     offending argument and the form that was expected (thread-local, valid
 *     until the next failing call on the same thread).
 *   - The library never allocates tensors.  It borrows pointers, shapes and
 *     strides (counted in elements, DLPack style) from the caller.
 *
 * Public symbols are csa_*, macros CSA_*, internal symbols csa__*.
 */
#ifndef CSA_CSA_H
#define CSA_CSA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CSA_VERSION_MAJOR 0
#define CSA_VERSION_MINOR 1
#define CSA_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Status codes.                                                              */
/*                                                                            */
/* One table, X-macro style (libuv): name, value and the generic message.     */
/* Detail for a particular failure comes from csa_errmsg().  Bindings map     */
/* codes to their language's errors themselves (the Python one lives in      */
/* csrc/python/errors.c).                                                     */
/* ------------------------------------------------------------------------ */
#define CSA_STATUS_MAP(XX)                                                  \
  XX(OK,        0,   "success")                                             \
  XX(EINVAL,   -1,   "invalid argument")                                    \
  XX(ESHAPE,   -2,   "tensor shape does not fit the attention call")        \
  XX(EDTYPE,   -3,   "unsupported or mismatched dtype")                     \
  XX(EDEVICE,  -4,   "tensors are not on one supported device")             \
  XX(ESTRIDE,  -5,   "unsupported memory layout (strides)")                 \
  XX(ECUSEQ,   -6,   "invalid cu_seqlens")                                  \
  XX(ENOMEM,   -7,   "out of memory")                                       \
  XX(ENOTSUP,  -8,   "not supported by this build or device")               \
  XX(ECUDA,    -9,   "CUDA runtime error")                                  \
  XX(EIO,      -10,  "filesystem operation failed")                         \
  XX(EEXIST,   -11,  "path exists and is not ours to replace")              \
  XX(ENOENT,   -12,  "file not found")                                      \
  XX(EPERM,    -13,  "operation not permitted")                             \
  XX(EISDIR,   -14,  "path is a directory")                                 \
  XX(EPATH,    -15,  "path is absolute, contains '..' or escapes its root") \
  XX(EINTERNAL, -16, "internal error (a bug: please report it)")

typedef enum csa_status {
#define CSA__STATUS_ENUM(name, val, msg) CSA_##name = (val),
  CSA_STATUS_MAP(CSA__STATUS_ENUM)
#undef CSA__STATUS_ENUM
  CSA__STATUS_MIN = -16
} csa_status;

/* "CSA_ESHAPE" etc.; "CSA_UNKNOWN" for codes outside the table. */
const char *csa_status_name(int status);
/* The generic sentence of the table. */
const char *csa_strerror(int status);
/* Detail of the last failure on this thread ("" if none). */
const char *csa_errmsg(void);
/* Clears the thread's detail message. */
void csa_clear_error(void);

/* ------------------------------------------------------------------------ */
/* Tensor views                                                               */
/* ------------------------------------------------------------------------ */
/* Element types: name, value, the name users see, size in bytes.  int64 is
 * recognized only to name it in error messages. */
#define CSA_DTYPE_MAP(XX)              \
  XX(FLOAT32,  1, "float32", 4)        \
  XX(FLOAT16,  2, "float16", 2)        \
  XX(BFLOAT16, 3, "bfloat16", 2)       \
  XX(INT32,    4, "int32", 4)          \
  XX(FLOAT64,  5, "float64", 8)        \
  XX(INT64,    6, "int64", 8)

typedef enum csa_dtype {
  CSA_DTYPE_INVALID = 0,
#define CSA__DTYPE_ENUM(name, val, str, size) CSA_##name = (val),
  CSA_DTYPE_MAP(CSA__DTYPE_ENUM)
#undef CSA__DTYPE_ENUM
} csa_dtype;

/* Devices: name, value (DLPack's DLDeviceType, so a DLPack capsule's device
 * reads directly; OTHER is ours: a device torch runs on that DLPack has no
 * code for), and the name users see (torch's device type; ROCm is "rocm"
 * although torch calls it "cuda").  The kernels run on CPU and CUDA; the
 * others are known so that validation and dispatch can say what to use. */
#define CSA_DEVICE_MAP(XX)  \
  XX(CPU,    1,  "cpu")     \
  XX(CUDA,   2,  "cuda")    \
  XX(METAL,  8,  "mps")     \
  XX(ROCM,   10, "rocm")    \
  XX(ONEAPI, 14, "xpu")     \
  XX(OTHER,  30, "other")

typedef enum csa_device_type {
#define CSA__DEVICE_ENUM(name, val, str) CSA_DEVICE_##name = (val),
  CSA_DEVICE_MAP(CSA__DEVICE_ENUM)
#undef CSA__DEVICE_ENUM
} csa_device_type;

/* "cpu", "cuda", ...; "unknown" outside the table. */
const char *csa_device_name(int device_type);

#define CSA_MAX_NDIM 4

/* A borrowed, strided view.  data already includes any byte offset.
 * data == NULL with ndim == 0 means "absent" for optional tensors. */
typedef struct csa_tensor {
  void *data;
  int32_t dtype;       /* csa_dtype */
  int32_t device_type; /* csa_device_type */
  int32_t device_id;
  int32_t ndim;
  int64_t shape[CSA_MAX_NDIM];
  int64_t strides[CSA_MAX_NDIM]; /* in elements */
} csa_tensor;

size_t csa_dtype_size(int dtype); /* 0 for invalid */
const char *csa_dtype_name(int dtype);

/* ------------------------------------------------------------------------ */
/* Varlen attention                                                           */
/*                                                                            */
/*   q   [T_q,  H,    D ]     k [T_kv, H_kv, D]     v [T_kv, H_kv, D_v]      */
/*   out [T_q,  H,    D_v]    (written; same dtype as q)                      */
/*   cu_seqlens_q / cu_seqlens_kv: int32 [B+1], cu[0] = 0, non-decreasing,    */
/*   cu[B] = T.  lse (optional): float32 [H, T_q], natural log.               */
/*                                                                            */
/*   out[i] = softmax(scale * q[i] . K_s^T) V_s  for i in sequence s,         */
/*   head h reads kv head h / (H / H_kv); causal is bottom-right aligned:     */
/*   row i of a sequence sees key j iff j <= i + L_kv - L_q.  A row with no   */
/*   visible key outputs zeros and lse = -inf.  Accumulation is float32.      */
/* ------------------------------------------------------------------------ */
typedef struct csa_attn_params {
  csa_tensor q, k, v, out;
  csa_tensor cu_seqlens_q, cu_seqlens_kv;
  csa_tensor lse; /* optional (data == NULL: not requested) */

  /* Host-readable copies of the cu_seqlens values.  For CPU tensors these may
   * be NULL (the tensors themselves are read).  For device tensors the caller
   * may pass host values so that validation checks every one; NULL means "not
   * checked on the host": the caller sanitized them on the device (clamped,
   * violations recorded) or opted out, and the CUDA kernels clamp every
   * length themselves. */
  const int32_t *cu_seqlens_q_host;
  const int32_t *cu_seqlens_kv_host;

  int64_t max_seqlen_q, max_seqlen_kv;
  float softmax_scale; /* 0 or negative: 1 / sqrt(D) */
  int causal;          /* 0 / 1 */

  int num_threads;     /* CPU: worker threads (<= 0: 1) */
  void *stream;        /* CUDA: cudaStream_t to launch on (NULL: legacy default) */
} csa_attn_params;

/* Checks everything the kernels rely on: ranks, dtypes, devices, shapes,
 * last-dim strides, cu_seqlens values (where host-readable) and max_seqlen.
 * Runs no kernel and touches no output. */
int csa_attn_validate(const csa_attn_params *p);

/* CPU kernel (q/k/v/out on CPU; fp32, fp16, bf16).  Validates first. */
int csa_attn_cpu(const csa_attn_params *p);

/* CUDA kernel (tensors on one CUDA device; fp16, bf16, fp32 converted on
 * load).  Validates first.  Returns CSA_ENOTSUP in builds without CUDA. */
int csa_attn_cuda(const csa_attn_params *p);

/* 1 if this build contains the CUDA kernels. */
int csa_have_cuda(void);

/* ------------------------------------------------------------------------ */
/* CPU feature selection (for the CPU kernels).                               */
/* ------------------------------------------------------------------------ */
/* CPU kernel ISAs: name, value, the name COMFY_SPARSE_ATTN_CPU_ISA takes. */
#define CSA_CPU_ISA_MAP(XX)                                           \
  XX(SCALAR,     0, "scalar")                                         \
  XX(AVX2,       1, "avx2")       /* AVX2 + FMA */                    \
  XX(AVX512,     2, "avx512")     /* AVX-512F (+BW/VL) */             \
  XX(AVX512BF16, 3, "avx512bf16") /* AVX-512 with vdpbf16ps */        \
  XX(NEON,       4, "neon")

typedef enum csa_cpu_isa {
#define CSA__ISA_ENUM(name, val, str) CSA_ISA_##name = (val),
  CSA_CPU_ISA_MAP(CSA__ISA_ENUM)
#undef CSA__ISA_ENUM
} csa_cpu_isa;

/* ISA the CPU kernel will use: the fastest on this CPU (measured, not the
 * newest: on Intel without AMX vdpbf16ps runs at half the FMA rate, so bf16
 * calls widen to fp32 under avx512 there), unless the environment variable
 * COMFY_SPARSE_ATTN_CPU_ISA (scalar|avx2|avx512|avx512bf16|neon) asks for one
 * the CPU also supports.  Under avx512bf16 the bf16 products run on AMX tiles
 * where Linux grants them; COMFY_SPARSE_ATTN_CPU_AMX=0 keeps vdpbf16ps. */
int csa_cpu_isa_selected(void);
const char *csa_cpu_isa_name(int isa);
/* Forces an ISA for this process (tests); CSA_ENOTSUP if the CPU lacks it.
 * isa = -1 returns to the automatic choice. */
int csa_cpu_isa_force(int isa);

/* ------------------------------------------------------------------------ */
/* setup_link: stage a file inside the ComfyUI `comfy` package.               */
/*                                                                            */
/* Target = <comfy_dir>/<comfy_relative>.  What happens, by target state:     */
/*   absent                 symlink -> resolved source, made under a temp     */
/*                          name in the target's directory and renamed into   */
/*                          place without replacing (CREATED)                 */
/*   regular file           untouched: ComfyUI ships it (SKIP_NATIVE)         */
/*   symlink to the source  untouched (SKIP_SAME); "same" = resolves to the   */
/*                          same file (device + inode / volume + file index)  */
/*   other symlink,         atomically replaced by rename over it (REPLACED); */
/*   dangling symlink       info->previous says what it pointed to            */
/*   directory              untouched (SKIP_DIR): the caller warns            */
/*   anything else (FIFO,   CSA_EEXIST                                        */
/*   socket, device)                                                          */
/* Links that cannot be made here (EPERM/EACCES/EROFS, Windows privilege      */
/* error 1314, file systems without symlinks) give NOT_PERMITTED and leave    */
/* everything as it was: the caller falls back to an in-process alias.        */
/*                                                                            */
/* Errors (nothing touched): comfy_relative empty, absolute, drive- or        */
/* UNC-rooted, with "." / ".." / empty components, ':', < > " | ? * or        */
/* control bytes, a component ending in '.' or ' ', or a Windows device name  */
/* -> CSA_EPATH; the target's parent directory escaping comfy_dir once        */
/* symlinks are resolved -> CSA_EPATH; the parent missing -> CSA_ENOENT       */
/* (parents are never created: a missing "ldm/" means this is not the         */
/* ComfyUI we expect);                                                        */
/* source missing -> CSA_ENOENT, source a directory -> CSA_EISDIR.            */
/*                                                                            */
/* Git: when comfy_dir lies in a git work tree (a ".git" directory, or a      */
/* ".git" file "gitdir: ..." for worktrees and submodules, found walking up), */
/* the target's repo-relative path is added once to the repository's          */
/* info/exclude (via git's own lockfile protocol: write "exclude.lock", then  */
/* rename) on CREATED, REPLACED and SKIP_SAME.  Git overwrites *ignored*      */
/* files on pull but refuses to overwrite untracked ones, so this keeps       */
/* ComfyUI's `git pull` working once upstream ships the real file.  Failing   */
/* to update the exclude file is not an error: see info->git_exclude.         */
/* ------------------------------------------------------------------------ */
/* Outcome of csa_setup_link: name, value, meaning. */
#define CSA_LINK_RESULT_MAP(XX)                                                      \
  XX(CREATED,       1, "target was absent; link created")                          \
  XX(REPLACED,      2, "dangling link / link elsewhere replaced")                  \
  XX(SKIP_NATIVE,   3, "target is a real file (ComfyUI ships it)")                 \
  XX(SKIP_SAME,     4, "target already links to source")                           \
  XX(SKIP_DIR,      5, "target is a directory: left alone")                        \
  XX(NOT_PERMITTED, 6, "links cannot be created here: caller falls back")

typedef enum csa_link_result {
#define CSA__LINK_ENUM(name, val, msg) CSA_LINK_##name = (val),
  CSA_LINK_RESULT_MAP(CSA__LINK_ENUM)
#undef CSA__LINK_ENUM
} csa_link_result;

/* Outcome of the git exclude step (csa_link_info.git_exclude). */
#define CSA_LINK_GIT_MAP(XX)                                                     \
  XX(NONE,    0, "not in a git work tree, or nothing staged")                  \
  XX(ADDED,   1, "line appended to info/exclude")                              \
  XX(PRESENT, 2, "line was already there")                                     \
  XX(FAILED,  3, "could not update it: git_note says why")

typedef enum csa_link_git {
#define CSA__LINK_GIT_ENUM(name, val, msg) CSA_LINK_GIT_##name = (val),
  CSA_LINK_GIT_MAP(CSA__LINK_GIT_ENUM)
#undef CSA__LINK_GIT_ENUM
} csa_link_git;

/* Paths longer than this (bytes of UTF-8, with the NUL) are refused with
 * CSA_EPATH. */
#define CSA_LINK_PATH_MAX 4096

/* Details of one call, for the caller's log. */
typedef struct csa_link_info {
  int result;                          /* csa_link_result */
  char target[CSA_LINK_PATH_MAX];      /* absolute path of the target */
  char source[CSA_LINK_PATH_MAX];      /* resolved absolute source */
  char previous[CSA_LINK_PATH_MAX];    /* REPLACED: what the old link held */
  int git_exclude;                     /* csa_link_git */
  char git_path[CSA_LINK_PATH_MAX];    /* the exclude file (ADDED/PRESENT/FAILED) */
  char git_note[512];                  /* FAILED: the reason */
} csa_link_info;

/* source: path of the file to stage (must exist, resolved to an absolute
 * path).  comfy_dir: the comfy package directory.  comfy_relative: relative
 * path inside it ('/' or '\\' separated).  *result receives a csa_link_result
 * on CSA_OK.  Safe to call from many processes at once: they leave one valid
 * link and no temporary files.  Paths are UTF-8 on every platform. */
int csa_setup_link(const char *source, const char *comfy_dir,
                   const char *comfy_relative, int *result);

/* As csa_setup_link, filling *info (which may be NULL).  comfy_dir == NULL
 * checks source and comfy_relative only, touches nothing, and sets
 * info->result = 0. */
int csa_setup_link_ex(const char *source, const char *comfy_dir,
                      const char *comfy_relative, csa_link_info *info);

#ifdef __cplusplus
}
#endif
#endif /* CSA_CSA_H */
