// The single door to OpenBLAS. C types stay behind it: the rest of SwiftSKD sees Swift signatures.

import COpenBLAS
import CSKDKernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Thin, checked wrappers over the CBLAS calls SwiftSKD uses.
package enum BLAS {
    /// The number of threads OpenBLAS uses for one GEMM.
    package static var threads: Int {
        get { _ = kernelSelection; return Int(openblas_get_num_threads()) }
        set { _ = kernelSelection; openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS's build description and the core in use, e.g.
    /// `"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64 (core: SkylakeX, OpenBLAS chose Prescott; …)"`.
    /// The build string names the core the library was compiled for; the core in use is what `kernelSelection` left.
    package static var configuration: String { kernelSelection.description }

    /// Makes OpenBLAS's idle worker threads sleep right after a GEMM instead of spinning, once per process.
    ///
    /// Why: OpenBLAS's pthread server keeps its workers busy-waiting with `sched_yield` for 2²⁸ cycles (≈ 0.1 s)
    /// after every call. SwiftSKD alternates GEMMs with its own parallel kernels (`Parallel.forEach`) on the same
    /// cores, so those spinning workers steal the cores the kernels run on: in a training step ~15 % of the samples
    /// were in the scheduler. With the shortest timeout (2⁴ cycles) a worker sleeps on a condition variable and is
    /// woken for the next GEMM (microseconds, against GEMMs of a millisecond or more). Done through OpenBLAS's own
    /// `OPENBLAS_THREAD_TIMEOUT` setting — re-read and applied by restarting its idle thread server — and only when
    /// the user has not set that variable. Symbols are looked up at run time: with another BLAS this does nothing.
    static let quietIdleThreads: Bool = {
        #if canImport(Glibc)
        guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil,
              let readEnv = dlsym(nil /* RTLD_DEFAULT */, "openblas_read_env"),
              let shutdown = dlsym(nil, "blas_thread_shutdown_") else { return false }
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0)
        unsafeBitCast(readEnv, to: (@convention(c) () -> Void).self)()
        // The server restarts on the next threaded call and reads the new timeout then.
        _ = unsafeBitCast(shutdown, to: (@convention(c) () -> Int32).self)()
        return true
        #else
        return false
        #endif
    }()

    /// `C = alpha · op(A) · op(B) + beta · C` on row-major matrices.
    ///
    /// - Parameters:
    ///   - transA: use Aᵀ; A is stored `[k, m]` instead of `[m, k]` (leading dimension `lda`).
    ///   - transB: use Bᵀ; B is stored `[n, k]` instead of `[k, n]` (leading dimension `ldb`).
    ///   - m, n, k: `op(A)` is `[m, k]`, `op(B)` is `[k, n]`, C is `[m, n]` with leading dimension `ldc`.
    @inline(__always)
    package static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        guard m > 0, n > 0 else { return }
        _ = kernelSelection
        _ = quietIdleThreads
        if k == 0 {
            // BLAS leaves C untouched only when beta == 1; make the empty product explicit.
            if beta == 0 { for i in 0..<m { (c + i * (ldc ?? n)).update(repeating: 0, count: n) } }
            else if beta != 1 { for i in 0..<m { let r = c + i * (ldc ?? n); for j in 0..<n { r[j] *= beta } } }
            return
        }
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        if directSmallProducts, !transA, alpha == 1, beta == 0 || beta == 1 {
            if !transB, skd_small_sgemm_preferred(m, n, k) != 0 {
                smallProduct(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, accumulate: beta == 1)
                return
            }
            if transB, skd_small_sgemm_nt_preferred(m, n, k) != 0 {
                // Few outputs: split the rows of C (each a full-length dot product) when there are several.
                Parallel.forEach(m, cost: n * k) { rows in
                    skd_small_sgemm_nt(rows.count, n, k, a + rows.lowerBound * lda, lda, b, ldb,
                                       c + rows.lowerBound * ldc, ldc, beta == 1 ? 1 : 0)
                }
                return
            }
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Whether `sgemm` hands narrow products — few rows or a short inner dimension (the 1×1 convolutions of 8–32
    /// channel students), or a small `A·Bᵀ` over a long inner dimension — to the direct kernels of CSKDGemm.h
    /// where the kernel level in use measured faster than OpenBLAS. On by default; `SKD_DIRECT_GEMM=0` in the
    /// environment turns it off for the process (to compare), as does setting this to false.
    package static var directSmallProducts: Bool = ProcessInfo.processInfo.environment["SKD_DIRECT_GEMM"] != "0"

    /// `C = A·B` (or `C += A·B`) by the direct kernel, the columns split over `Parallel`'s threads in blocks of 64
    /// (inline when already inside a parallel loop). Every element sums its `k` products in the same order however
    /// the columns are split.
    static func smallProduct(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
                             ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let blocks = (n + 63) / 64
        Parallel.forEach(blocks, cost: 64 * m * k) { range in
            let start = range.lowerBound * 64, end = min(n, range.upperBound * 64)
            skd_small_sgemm(m, end - start, k, a, lda, b + start, ldb, c + start, ldc, accumulate ? 1 : 0)
        }
    }
}
