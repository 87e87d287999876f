/*
 * dlpack.h — borrow a tensor's memory through the DLPack protocol.
 *
 * The structs below restate the DLPack ABI (v0.8 "DLManagedTensor" and v1.x
 * "DLManagedTensorVersioned") in our own names: the layout is the standard,
 * so torch, CuPy or JAX capsules all read the same.  We never link libtorch.
 */
#ifndef CSA_PYTHON_DLPACK_H
#define CSA_PYTHON_DLPACK_H

/* Py_LIMITED_API comes from the build (python_add_library USE_SABI 3.10). */
#include <Python.h>

#include "csa/csa.h"

typedef struct {
  int32_t device_type; /* 1 = CPU, 2 = CUDA, 3 = CUDA host, ... */
  int32_t device_id;
} csa__dl_device;

typedef struct {
  uint8_t code; /* 0 int, 1 uint, 2 float, 4 bfloat */
  uint8_t bits;
  uint16_t lanes;
} csa__dl_dtype;

typedef struct {
  void *data;
  csa__dl_device device;
  int32_t ndim;
  csa__dl_dtype dtype;
  int64_t *shape;
  int64_t *strides; /* NULL: compact row-major */
  uint64_t byte_offset;
} csa__dl_tensor;

typedef struct csa__dl_managed {
  csa__dl_tensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(struct csa__dl_managed *self);
} csa__dl_managed;

typedef struct csa__dl_managed_versioned {
  struct {
    uint32_t major, minor;
  } version;
  void *manager_ctx;
  void (*deleter)(struct csa__dl_managed_versioned *self);
  uint64_t flags; /* bit 0: read only */
  csa__dl_tensor dl_tensor;
} csa__dl_managed_versioned;

/* The DLPack C exchange table a producer publishes as the PyCapsule
 * "dlpack_exchange_api" in its tensor type's __dlpack_c_exchange_api__
 * (DLPack 1.x; torch >= 2.10).  It lets C read a tensor's descriptor with
 * no capsule, no allocation and no Python call; only the members used here
 * are named, the layout is the standard's. */
typedef struct csa__dl_exchange_api {
  struct {
    uint32_t major, minor;
  } version;
  void *prev_api;
  void *managed_tensor_allocator;
  void *managed_tensor_from_py_object_no_sync;
  void *managed_tensor_to_py_object_no_sync;
  /* Fills *out (caller-owned) with a non-owning descriptor of py_object, a
   * tensor of the producer's type; shape / strides point into the tensor,
   * valid while it is alive and unchanged.  0, or -1 with an exception set. */
  int (*dltensor_from_py_object_no_sync)(void *py_object, csa__dl_tensor *out);
  /* The producer's current work stream of a device (torch: the current
   * CUDA stream; NULL for the CPU).  0, or -1 with an exception set. */
  int (*current_work_stream)(int device_type, int32_t device_id, void **out_stream);
} csa__dl_exchange_api;

/* Fills *view from a DLPack descriptor (shape and strides copied, byte
 * offset applied).  0, or -1 with a ValueError naming the argument. */
int csa__py_view_from_dl(const csa__dl_tensor *t, const char *name, csa_tensor *view);

/* Fills *view from obj (an object with __dlpack__, or a DLPack capsule).
 * *keep receives a new reference that owns the exported memory descriptor; the
 * caller releases it (Py_DECREF) once the C call that reads view is done.
 * For CUDA tensors the export is requested with stream=-1 (no sync: the
 * kernels run on the stream the caller passes).  writable: reject read-only
 * exports.  Returns 0, or -1 with a Python exception set. */
int csa__py_tensor_view(PyObject *obj, const char *name, int writable, csa_tensor *view,
                        PyObject **keep);

#endif /* CSA_PYTHON_DLPACK_H */
