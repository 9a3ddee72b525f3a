// libFuzzer harness for the safetensors reader (`make fuzz`): compiled into one module with SKDTensor's sources
// (swiftc -sanitize=fuzzer,address). Every byte string written as a file and read back must give a tensor file or
// a SafeTensorsError — never a trap, an overflow, an out-of-bounds read or a huge allocation.

import Foundation

private let scratch: URL = {
    let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    return URL(fileURLWithPath: folder).appendingPathComponent("skd-fuzz-safetensors-\(getpid()).safetensors")
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    guard (try? bytes.write(to: scratch)) != nil else { return 0 }
    do {
        let file = try SafeTensors.read(scratch)
        // Whatever was accepted is consistent: every tensor's values are readable.
        for (_, tensor) in file.tensors {
            var sum: Float = 0
            for i in 0..<tensor.count { sum += tensor.pointer[i] }
            _ = sum
        }
    } catch is SafeTensorsError {
    } catch {
        // Only SafeTensorsError is documented; anything else is a finding.
        fatalError("unexpected error type: \(error)")
    }
    return 0
}
