// MPI for data-parallel training: the `GradientCommunicator` of SKDDistill over Open MPI (CMPI), plus what a
// launcher needs around it (is this process an MPI rank, init/finalize, barrier, byte broadcasts, a clean abort).
// Only `skd` links it: SKDTensor, SKDNN, SKDModels, SKDImage and SKDDistill need no MPI.

import CMPI
import Foundation
import SKDDistill

/// `MPI_COMM_WORLD` as a `GradientCommunicator`. Every call is collective; an MPI error (a rank that died, a
/// broken connection) prints one line naming the call and ends the whole job with `MPI_Abort`, never a hang.
public final class MPICommunicator: GradientCommunicator {
    /// This process's rank in `MPI_COMM_WORLD`.
    public let rank: Int
    /// The number of ranks in `MPI_COMM_WORLD`.
    public let size: Int
    /// The ranks on this node (Open MPI's `OMPI_COMM_WORLD_LOCAL_SIZE`; 1 when the launcher does not say).
    public let localSize: Int
    private let world: MPI_Comm?
    private var finalized = false

    /// The largest element count passed to one MPI call (MPI counts are 32-bit).
    static let chunk = 1 << 28

    /// Whether this process was started by an MPI launcher (`mpirun`, `srun`) — judged from the environment the
    /// launcher sets, so that a plain `skd distill` never initialises MPI.
    public static var isLaunchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// Initialises MPI (thread level `MPI_THREAD_FUNNELED`: only the calling thread makes MPI calls) with errors
    /// returned to the caller instead of Open MPI's default abort, so that failures get SwiftSKD's message.
    ///
    /// - Returns: the world communicator, or the error of the failed initialisation.
    public static func initialize() -> Result<MPICommunicator, MPIError> {
        var provided: Int32 = 0
        let status = MPI_Init_thread(nil, nil, skd_mpi_thread_funneled(), &provided)
        guard status == skd_mpi_success() else { return .failure(MPIError(call: "MPI_Init_thread", code: status)) }
        let world = skd_mpi_comm_world()
        _ = MPI_Comm_set_errhandler(world, skd_mpi_errors_return())
        var rank: Int32 = 0, size: Int32 = 1
        MPI_Comm_rank(world, &rank)
        MPI_Comm_size(world, &size)
        let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
        return .success(MPICommunicator(world: world, rank: Int(rank), size: Int(size), localSize: max(1, local)))
    }

    private init(world: MPI_Comm?, rank: Int, size: Int, localSize: Int) {
        self.world = world; self.rank = rank; self.size = size; self.localSize = localSize
    }

    /// Ends MPI for this process (collective: returns once every rank has called it). Idempotent.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        MPI_Finalize()
    }

    /// Prints `skd: error: rank R: message` on standard error and ends every rank of the job with `status`.
    public func abort(_ message: String, status: Int32 = 1) -> Never {
        FileHandle.standardError.write(Data("skd: error: rank \(rank) of \(size): \(message); ending the whole MPI job\n".utf8))
        MPI_Abort(world, status)
        exit(status)
    }

    private func check(_ status: Int32, _ call: String) {
        if status != skd_mpi_success() {
            abort("\(MPIError(call: call, code: status).description) (another rank probably died)")
        }
    }

    /// Waits until every rank has called it.
    public func barrier() { check(MPI_Barrier(world), "MPI_Barrier") }

    /// In-place element-wise sum over all ranks (`MPI_Allreduce` with `MPI_IN_PLACE`), in chunks of 2²⁸ values.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let n = min(MPICommunicator.chunk, buffer.count - offset)
            check(MPI_Allreduce(skd_mpi_in_place(), base + offset, Int32(n), skd_mpi_float(), skd_mpi_sum(), world), "MPI_Allreduce")
            offset += n
        }
    }

    /// `root`'s `buffer` on every rank (`MPI_Bcast`).
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {
        guard let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let n = min(MPICommunicator.chunk, buffer.count - offset)
            check(MPI_Bcast(base + offset, Int32(n), skd_mpi_float(), Int32(root), world), "MPI_Bcast")
            offset += n
        }
    }

    /// Every rank's `send` in rank order (`MPI_Allgather`).
    public func allGather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>) {
        precondition(receive.count == send.count * size && send.count <= MPICommunicator.chunk,
                     "allGather: \(receive.count) slots for \(size) × \(send.count) values")
        check(MPI_Allgather(send.baseAddress, Int32(send.count), skd_mpi_float(),
                            receive.baseAddress, Int32(send.count), skd_mpi_float(), world), "MPI_Allgather")
    }

    /// `root`'s bytes on every rank (their length first, then the bytes).
    public func broadcast(bytes: [UInt8], root: Int = 0) -> [UInt8] {
        var length = UInt64(bytes.count)
        check(MPI_Bcast(&length, 8, skd_mpi_byte(), Int32(root), world), "MPI_Bcast")
        var out = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        if length > 0 {
            out.withUnsafeMutableBytes { b in
                check(MPI_Bcast(b.baseAddress, Int32(length), skd_mpi_byte(), Int32(root), world), "MPI_Bcast")
            }
        }
        return out
    }
}

/// An MPI call failed.
public struct MPIError: Error, CustomStringConvertible {
    /// The MPI function.
    public let call: String
    /// Its return code.
    public let code: Int32

    /// `call failed: <MPI's error string>`.
    public var description: String {
        var text = [CChar](repeating: 0, count: 512)
        var length: Int32 = 0
        let known = MPI_Error_string(code, &text, &length) == skd_mpi_success()
        let reason = known ? String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self) : "error \(code)"
        return "\(call) failed: \(reason)"
    }
}
