/* TEMPORARY (removed once csrc/cpu and csrc/link land): weak stand-ins so
 * the extension links while those areas are being written. */
#include "internal.h"
#define CSA__WEAK __attribute__((weak))
CSA__WEAK int csa_attn_cpu(const csa_attn_params *p) { (void)p; return csa__error(CSA_ENOTSUP, "CPU kernel not built yet"); }
CSA__WEAK int csa_cpu_isa_selected(void) { return CSA_ISA_SCALAR; }
CSA__WEAK const char *csa_cpu_isa_name(int isa) { (void)isa; return "scalar"; }
CSA__WEAK int csa_cpu_isa_force(int isa) { (void)isa; return CSA_ENOTSUP; }
CSA__WEAK int csa_setup_link(const char *s, const char *d, const char *r, int *res) { (void)s; (void)d; (void)r; (void)res; return csa__error(CSA_ENOTSUP, "setup_link not built yet"); }
