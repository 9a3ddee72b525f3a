// What the processor offers, read with cpuid and xgetbv (the instruction sets *and* the operating system's
// support for their registers), so that SwiftSKD can say what runs and choose BLAS and row kernels that fit.
#ifndef CSKDCPU_H
#define CSKDCPU_H

/// Instruction-set features, as bits of `skd_cpu_info.features`. A bit is set only when the CPU reports the
/// instructions and the operating system saves the registers they use (XCR0), i.e. when they can run.
enum {
    SKD_CPU_SSE3 = 1 << 0,
    SKD_CPU_SSSE3 = 1 << 1,
    SKD_CPU_SSE41 = 1 << 2,
    SKD_CPU_SSE42 = 1 << 3,
    SKD_CPU_AVX = 1 << 4,
    SKD_CPU_FMA = 1 << 5,
    SKD_CPU_AVX2 = 1 << 6,
    SKD_CPU_AVX512F = 1 << 7,
    SKD_CPU_AVX512BW = 1 << 8,
    SKD_CPU_AVX512DQ = 1 << 9,
    SKD_CPU_AVX512VL = 1 << 10,
    SKD_CPU_AVX512BF16 = 1 << 11,
    SKD_CPU_AVX512FP16 = 1 << 12,
    SKD_CPU_AMX_TILE = 1 << 13,
    SKD_CPU_AMX_BF16 = 1 << 14,
    SKD_CPU_F16C = 1 << 15,
};

/// The processor's identity and features.
typedef struct skd_cpu_info {
    /// "GenuineIntel", "AuthenticAMD", ... (empty on a non-x86 machine).
    char vendor[16];
    /// The brand string, e.g. "Intel(R) Xeon(R) Processor" (empty when the CPU reports none).
    char brand[52];
    /// Display family and model (extended fields folded in, as the kernel's /proc/cpuinfo shows them).
    int family;
    int model;
    /// `SKD_CPU_*` bits.
    unsigned int features;
} skd_cpu_info;

/// Fills `info` from cpuid/xgetbv (all zero and empty on a non-x86 machine).
void skd_cpu_query(skd_cpu_info *info);

#endif
