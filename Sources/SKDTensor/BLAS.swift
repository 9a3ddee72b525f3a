// The single door to OpenBLAS. C types stay behind it: the rest of SwiftSKD sees Swift signatures.

import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Thin, checked wrappers over the CBLAS calls SwiftSKD uses.
public enum BLAS {
    /// The number of threads OpenBLAS uses for one GEMM.
    public static var threads: Int {
        get { _ = kernelSelection; return Int(openblas_get_num_threads()) }
        set { _ = kernelSelection; openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS's build description and the core in use, e.g.
    /// `"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64 (core: SkylakeX, OpenBLAS chose Prescott; …)"`.
    /// The build string names the core the library was compiled for; the core in use is what `kernelSelection` left.
    public static var configuration: String { kernelSelection.description }

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
    public static func sgemm(
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
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc ?? n))
    }
}
