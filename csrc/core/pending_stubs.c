/* TEMPORARY (removed once csrc/cpu lands): stand-ins so the extension links
 * while that area is being written; built only while csrc/cpu/sources.cmake
 * does not exist. */
#include "internal.h"
int csa_attn_cpu(const csa_attn_params *p) { (void)p; return csa__error(CSA_ENOTSUP, "CPU kernel not built yet"); }
int csa_cpu_isa_selected(void) { return CSA_ISA_SCALAR; }
const char *csa_cpu_isa_name(int isa) { (void)isa; return "scalar"; }
int csa_cpu_isa_force(int isa) { (void)isa; return CSA_ENOTSUP; }
