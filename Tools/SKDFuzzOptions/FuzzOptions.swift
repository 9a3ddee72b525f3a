// The options parsers under libFuzzer (`make fuzz`): every byte string as an options file
// (`RunConfiguration.load(yaml:)`: YAML, unknown and duplicate keys, every value's range, the architecture checks)
// and, line by line, as `--set key=value` overrides. Each must give a configuration or throw — never a trap, an
// abort or an out-of-bounds access — and what is accepted must write out (YAML and JSON) to text that reads back to
// the same options: writing is a fixed point (compared as text, so that a NaN, which is never equal to itself,
// still counts).
//
// `make fuzz` builds the library targets with `-sanitize=fuzzer,address` through SwiftPM (a build folder of its own)
// and links this file with `-DFUZZING` by hand, with libFuzzer's own `main` (SwiftPM's executables bring a `main`
// of their own, which collides with it). In an ordinary build the same target is a replay tool, `skd-fuzz-options FILE...`, that runs
// each file through the harness (to reproduce a finding under a debugger), so the target always compiles.

import Foundation
import SKDDistill

private let folder = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
private let scratch = URL(fileURLWithPath: folder).appendingPathComponent("skd-fuzz-options-\(getpid()).yml")
private let written = URL(fileURLWithPath: folder).appendingPathComponent("skd-fuzz-options-\(getpid())-written.yml")

/// Traps (a finding) unless `configuration` writes out to YAML and JSON that read back to the same text.
func checkRoundTrip(_ configuration: RunConfiguration, mode: RunMode) {
    let yaml = configuration.yamlString()
    guard (try? Data(yaml.utf8).write(to: written)) != nil else { return }
    do {
        let back = try RunConfiguration.load(yaml: written, mode: mode)
        precondition(back.yamlString() == yaml, "YAML round trip changed the options:\n\(yaml)\n---\n\(back.yamlString())")
    } catch {
        preconditionFailure("written options do not read back: \(error)\n\(yaml)")
    }
    let json = configuration.jsonString()
    do {
        let back = try RunConfiguration(json: json, source: "json")
        precondition(back.jsonString() == json, "JSON round trip changed the options:\n\(json)\n---\n\(back.jsonString())")
    } catch {
        preconditionFailure("written JSON does not read back: \(error)\n\(json)")
    }
}

/// One input: the whole bytes as an options file for both modes, then its first lines as `--set` overrides.
func exercise(_ bytes: Data) {
    guard (try? bytes.write(to: scratch)) != nil else { return }
    for mode in [RunMode.train, RunMode.distill] {
        if let configuration = try? RunConfiguration.load(yaml: scratch, mode: mode) {
            checkRoundTrip(configuration, mode: mode)
        }
    }
    let text = String(decoding: bytes, as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: true).prefix(8).map(String.init)
    if let configuration = try? RunConfiguration.defaults(mode: .distill, overrides: lines) {
        checkRoundTrip(configuration, mode: .distill)
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOptions(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    exercise(Data(bytes: data, count: size))
    return 0
}
#else
@main
struct ReplayOptions {
    static func main() {
        let files = CommandLine.arguments.dropFirst()
        guard !files.isEmpty else {
            print("usage: skd-fuzz-options FILE... (replays inputs through the options fuzz harness; `make fuzz` fuzzes)")
            exit(2)
        }
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("skd-fuzz-options: cannot read \(path)")
                exit(2)
            }
            exercise(data)
            print("\(path): ok")
        }
    }
}
#endif
