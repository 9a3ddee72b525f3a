#include "CSKDCPU.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

void skd_cpu_query(skd_cpu_info *info) {
    memset(info, 0, sizeof *info);
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return;
    unsigned int maxLeaf = eax;
    memcpy(info->vendor + 0, &ebx, 4);
    memcpy(info->vendor + 4, &edx, 4);
    memcpy(info->vendor + 8, &ecx, 4);

    __get_cpuid(1, &eax, &ebx, &ecx, &edx);
    int family = (eax >> 8) & 0xf, model = (eax >> 4) & 0xf;
    if (family == 0xf) family += (eax >> 20) & 0xff;
    if (family == 0x6 || family >= 0xf) model |= ((eax >> 16) & 0xf) << 4;
    info->family = family;
    info->model = model;

    unsigned int f = 0;
    if (ecx & (1u << 0)) f |= SKD_CPU_SSE3;
    if (ecx & (1u << 9)) f |= SKD_CPU_SSSE3;
    if (ecx & (1u << 19)) f |= SKD_CPU_SSE41;
    if (ecx & (1u << 20)) f |= SKD_CPU_SSE42;
    int osxsave = (ecx >> 27) & 1;
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    int ymm = (xcr0 & 0x6) == 0x6;             // SSE and AVX state
    int zmm = ymm && (xcr0 & 0xe0) == 0xe0;     // opmask, ZMM_Hi256, Hi16_ZMM
    int amx = (xcr0 & 0x60000ull) == 0x60000ull; // XTILECFG, XTILEDATA
    if (ymm && (ecx & (1u << 28))) f |= SKD_CPU_AVX;
    if (ymm && (ecx & (1u << 12))) f |= SKD_CPU_FMA;
    if (ymm && (ecx & (1u << 29))) f |= SKD_CPU_F16C;

    if (maxLeaf >= 7) {
        __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
        unsigned int subleaves = eax;
        if (ymm && (ebx & (1u << 5))) f |= SKD_CPU_AVX2;
        if (zmm && (ebx & (1u << 16))) f |= SKD_CPU_AVX512F;
        if (zmm && (ebx & (1u << 17))) f |= SKD_CPU_AVX512DQ;
        if (zmm && (ebx & (1u << 30))) f |= SKD_CPU_AVX512BW;
        if (zmm && (ebx & (1u << 31))) f |= SKD_CPU_AVX512VL;
        if (zmm && (edx & (1u << 23))) f |= SKD_CPU_AVX512FP16;
        if (amx && (edx & (1u << 24))) f |= SKD_CPU_AMX_TILE;
        if (amx && (edx & (1u << 22))) f |= SKD_CPU_AMX_BF16;
        if (subleaves >= 1) {
            __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
            if (zmm && (eax & (1u << 5))) f |= SKD_CPU_AVX512BF16;
        }
    }
    info->features = f;

    if (__get_cpuid(0x80000000, &eax, &ebx, &ecx, &edx) && eax >= 0x80000004) {
        unsigned int words[12];
        for (unsigned int leaf = 0; leaf < 3; leaf++)
            __get_cpuid(0x80000002 + leaf, &words[4 * leaf], &words[4 * leaf + 1], &words[4 * leaf + 2], &words[4 * leaf + 3]);
        memcpy(info->brand, words, 48);
        info->brand[48] = 0;
        // Trim the padding some CPUs put around the brand.
        char *start = info->brand;
        while (*start == ' ') start++;
        memmove(info->brand, start, strlen(start) + 1);
        for (size_t n = strlen(info->brand); n > 0 && info->brand[n - 1] == ' '; n--) info->brand[n - 1] = 0;
    }
}

#else

void skd_cpu_query(skd_cpu_info *info) { memset(info, 0, sizeof *info); }

#endif
