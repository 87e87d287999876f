"""ComfyUI facts for dispatch: the attention flags on ComfyUI's command line.

``comfy.cli_args`` parses ``sys.argv`` when it is imported, so this module
never imports it: the flags are read only when ComfyUI itself has already
imported it (``sys.modules``).  Outside ComfyUI every answer is "no flag".

Flags honoured (only when given explicitly):

``--use-sage-attention``          prefer sage2
``--use-flash-attention``         prefer flash
``--use-pytorch-cross-attention`` prefer the torch tier ("sdpa")
``--disable-xformers``            exclude xformers
"""
from __future__ import annotations

import sys

# flag attribute on comfy.cli_args.args -> backend preferred when it is set
_PREFER_FLAGS = (
    ("use_sage_attention", "sage2"),
    ("use_flash_attention", "flash"),
    ("use_pytorch_cross_attention", "sdpa"),
)
_DISABLE_FLAGS = (("disable_xformers", "xformers"),)

_cached = None  # (prefer, disabled names, flag names) once cli_args is seen


def comfy_flags():
    """(prefer: backend name or None, disabled: tuple of names, flags: tuple of the
    command-line flags that produced them).  ``(None, (), ())`` outside ComfyUI."""
    global _cached
    if _cached is not None:
        return _cached
    mod = sys.modules.get("comfy.cli_args")
    args = getattr(mod, "args", None) if mod is not None else None
    if args is None:
        return (None, (), ())  # not (yet) inside ComfyUI: look again next call
    prefer = None
    flags = []
    for attr, name in _PREFER_FLAGS:
        if getattr(args, attr, False) is True:
            flags.append("--" + attr.replace("_", "-"))
            if prefer is None:
                prefer = name
    disabled = []
    for attr, name in _DISABLE_FLAGS:
        if getattr(args, attr, False) is True:
            flags.append("--" + attr.replace("_", "-"))
            disabled.append(name)
    _cached = (prefer, tuple(disabled), tuple(flags))
    return _cached


def _reset_for_tests():
    global _cached
    _cached = None
