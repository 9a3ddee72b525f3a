// The single door to OpenBLAS. C types stay behind it: the rest of SwiftSKD sees Swift signatures.

import COpenBLAS
import Foundation

/// Thin, checked wrappers over the CBLAS calls SwiftSKD uses.
public enum BLAS {
    /// The number of threads OpenBLAS uses for one GEMM.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// OpenBLAS's build description (version, target core, threading), e.g. `"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64"`.
    public static var configuration: String {
        guard let config = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: config).trimmingCharacters(in: .whitespaces) + " (core: "
            + (openblas_get_corename().map { String(cString: $0) } ?? "?") + ")"
    }

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
