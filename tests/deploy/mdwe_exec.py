"""Run a command under the seccomp rule of systemd's MemoryDenyWriteExecute=yes.

    python tests/deploy/mdwe_exec.py --self-test
    python tests/deploy/mdwe_exec.py -- intake-server serve --config FILE

The filter is the one systemd 252 (Debian 12) installs for that setting on x86-64
(src/shared/seccomp-util.c, seccomp_memory_deny_write_execute): fail with EPERM

- mmap() whose prot has both PROT_WRITE and PROT_EXEC,
- mprotect() and pkey_mprotect() whose prot has PROT_EXEC,
- shmat() whose flags have SHM_EXEC;

everything else is allowed. A seccomp filter survives execve(), so the command runs
exactly as it would in the unit. This lets the tests show that the server works under
the setting without a running systemd (CI containers have none). x86-64 only: the
syscall numbers below are that architecture's; elsewhere the script exits 77 (skip).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct
import sys

# linux/filter.h, linux/seccomp.h, linux/audit.h, asm/unistd_64.h
_BPF_LD_W_ABS = 0x20
_BPF_JMP_JEQ_K = 0x15
_BPF_ALU_AND_K = 0x54
_BPF_RET_K = 0x06
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR_MMAP, _NR_MPROTECT, _NR_SHMAT, _NR_PKEY_MPROTECT = 9, 10, 30, 329
_PROT_WRITE, _PROT_EXEC = 0x2, 0x4
_SHM_EXEC = 0o100000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6]. The third argument's low
# 32 bits (little endian) hold prot / shmflg.
_OFF_NR, _OFF_ARCH, _OFF_ARG2 = 0, 4, 16 + 2 * 8


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def _program() -> bytes:
    deny = _SECCOMP_RET_ERRNO | errno.EPERM
    allow = _SECCOMP_RET_ALLOW

    def masked_eq(mask: int) -> list[bytes]:
        # A = arg2 & mask; return deny if A == mask else allow
        return [
            _insn(_BPF_LD_W_ABS, 0, 0, _OFF_ARG2),
            _insn(_BPF_ALU_AND_K, 0, 0, mask),
            _insn(_BPF_JMP_JEQ_K, 0, 1, mask),
            _insn(_BPF_RET_K, 0, 0, deny),
            _insn(_BPF_RET_K, 0, 0, allow),
        ]

    blocks = [masked_eq(_PROT_WRITE | _PROT_EXEC), masked_eq(_PROT_EXEC), masked_eq(_SHM_EXEC)]
    # The header is 9 instructions; the three 5-instruction blocks follow it.
    mmap_at, mprotect_at, shmat_at = 9, 14, 19

    def jump_if(nr: int, index: int, target: int) -> bytes:
        return _insn(_BPF_JMP_JEQ_K, target - (index + 1), 0, nr)

    header = [
        _insn(_BPF_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_BPF_JMP_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        _insn(_BPF_RET_K, 0, 0, allow),  # another ABI: not what this check is about
        _insn(_BPF_LD_W_ABS, 0, 0, _OFF_NR),
        jump_if(_NR_MMAP, 4, mmap_at),
        jump_if(_NR_MPROTECT, 5, mprotect_at),
        jump_if(_NR_PKEY_MPROTECT, 6, mprotect_at),
        jump_if(_NR_SHMAT, 7, shmat_at),
        _insn(_BPF_RET_K, 0, 0, allow),
    ]
    assert len(header) == mmap_at
    return b"".join(header + blocks[0] + blocks[1] + blocks[2])


def install() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    prog = _program()
    count = len(prog) // 8
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(count, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def self_test() -> None:
    """Show the filter is active: W+X and exec-gaining mappings fail, others work."""
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE).close()
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC).close()
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        pass
    else:
        raise SystemExit("W+X mmap was allowed: the filter is not active")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    addr = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if libc.mprotect(ctypes.c_void_p(addr), 4096, mmap.PROT_READ | mmap.PROT_EXEC) == 0:
        raise SystemExit("mprotect(PROT_EXEC) was allowed: the filter is not active")
    if ctypes.get_errno() != errno.EPERM:
        raise SystemExit(f"mprotect failed with errno {ctypes.get_errno()}, not EPERM")
    print("mdwe filter active: W+X mmap and mprotect(PROT_EXEC) refused with EPERM")


def main(argv: list[str]) -> None:
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        print("mdwe_exec: x86-64 Linux only", file=sys.stderr)
        sys.exit(77)
    install()
    if argv == ["--self-test"]:
        self_test()
        return
    if not argv or argv[0] != "--" or len(argv) < 2:
        sys.exit("usage: mdwe_exec.py --self-test | -- COMMAND [ARG...]")
    os.execvp(argv[1], argv[1:])  # noqa: S606 (the command is the caller's argv)


if __name__ == "__main__":
    main(sys.argv[1:])
