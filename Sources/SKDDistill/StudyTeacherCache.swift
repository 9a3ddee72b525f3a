// The teacher's forward pass shared by the runs of a study: for each batch of the deterministic batch schedule, the
// teacher's output and tap features are written once to disk and read back by every later student, instead of
// being recomputed per student. Batches are found by their content (the degraded input, compared exactly), so a
// run whose batches differ simply misses; the cache is bounded in bytes, and beyond the bound batches are
// recomputed.

import Foundation
import SKDModels
import SKDTensor

/// What every student needs from the frozen teacher for one batch: its output and the features at its taps.
public struct TeacherForward {
    /// The teacher's restored batch `[B, 3, H, W]`.
    public var output: Tensor
    /// Tap features by name, in the layout the teacher records them (`[B, C, h, w]`; Uformer tokens `[B, N, C]`).
    public var taps: [String: Tensor]

    /// A forward pass's output and taps.
    public init(output: Tensor, taps: [String: Tensor]) { self.output = output; self.taps = taps }
}

/// The teacher's forward passes of a study's batch schedule, on disk, bounded by a byte budget.
///
/// One file per batch, `<directory>/batch-<hash>.safetensors`, holding the batch's degraded input (compared in full
/// on every lookup, so a hash collision can only cost a miss), the teacher's output and its taps. `manifest.json`
/// names the teacher the entries were computed with; a different teacher empties the folder.
public final class TeacherForwardCache {
    /// The cache folder.
    public let directory: URL
    /// The byte budget of the folder's entries; a batch that would exceed it is not stored (it is recomputed).
    public let limitBytes: Int
    /// The taps recorded on a miss (besides any a caller needs).
    public let taps: [String]
    /// Lookups answered from disk.
    public private(set) var hits = 0
    /// Lookups not answered (then computed, and stored when within the budget).
    public private(set) var misses = 0
    /// Batches not stored because the budget was full.
    public private(set) var overBudget = 0
    /// Bytes of the entries in the folder.
    public private(set) var bytesUsed = 0

    /// Opens (or creates) the cache in `directory`.
    ///
    /// - Parameters:
    ///   - limitMB: the budget in MB (10⁶ bytes).
    ///   - taps: the taps stored with each batch: the union of what the study's students read.
    ///   - teacher: identifies the teacher (its weights file, size and date); a folder holding another teacher's
    ///     entries is emptied.
    /// - Throws: when the folder cannot be created or emptied.
    public init(directory: URL, limitMB: Int, taps: [String], teacher: String) throws {
        self.directory = directory
        self.limitBytes = max(0, limitMB) * 1_000_000
        self.taps = taps
        let fm = FileManager.default
        let manifest = directory.appendingPathComponent("manifest.json")
        let wanted = try JSONSerialization.data(withJSONObject: ["teacher": teacher, "taps": taps.sorted()], options: [.sortedKeys])
        if fm.fileExists(atPath: directory.path), fm.contents(atPath: manifest.path) != wanted {
            try fm.removeItem(at: directory)
        }
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        try wanted.write(to: manifest, options: .atomic)
        for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? [] where name.hasSuffix(".safetensors") {
            let size = (try? fm.attributesOfItem(atPath: directory.appendingPathComponent(name).path)[.size] as? NSNumber)?.intValue ?? 0
            bytesUsed += size
        }
    }

    /// The file of the batch whose degraded input is `input`.
    func entryURL(_ input: Tensor) -> URL {
        // FNV-1a over the shape and the float bits.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        for d in input.shape { for i in 0..<8 { mix(UInt8(truncatingIfNeeded: d >> (8 * i))) } }
        let p = input.pointer
        for i in 0..<input.count {
            let bits = p[i].bitPattern
            mix(UInt8(truncatingIfNeeded: bits)); mix(UInt8(truncatingIfNeeded: bits >> 8))
            mix(UInt8(truncatingIfNeeded: bits >> 16)); mix(UInt8(truncatingIfNeeded: bits >> 24))
        }
        return directory.appendingPathComponent(String(format: "batch-%016llx.safetensors", hash))
    }

    /// The stored forward pass of the batch `input` (`[B, 3, H, W]`) when it holds every tap in `needed`.
    public func lookup(_ input: Tensor, needing needed: Set<String>) -> TeacherForward? {
        let url = entryURL(input)
        guard FileManager.default.fileExists(atPath: url.path), let file = try? SafeTensors.read(url),
              let stored = file.tensors["input"], stored.shape == input.shape,
              memcmp(stored.pointer, input.pointer, input.count * MemoryLayout<Float>.size) == 0,
              let output = file.tensors["output"] else { misses += 1; return nil }
        var taps: [String: Tensor] = [:]
        for (key, value) in file.tensors where key.hasPrefix("tap.") { taps[String(key.dropFirst(4))] = value }
        guard needed.isSubset(of: taps.keys) else { misses += 1; return nil }
        hits += 1
        return TeacherForward(output: output, taps: taps)
    }

    /// Stores the forward pass of batch `input` unless the budget is spent (then counted in `overBudget`).
    ///
    /// - Returns: whether the entry was written.
    @discardableResult
    public func store(_ input: Tensor, _ forward: TeacherForward) -> Bool {
        var tensors = ["input": input, "output": forward.output]
        for (name, tensor) in forward.taps { tensors["tap." + name] = tensor }
        let bytes = tensors.values.reduce(0) { $0 + 4 * $1.count } + 4096
        guard bytesUsed + bytes <= limitBytes else { overBudget += 1; return false }
        let url = entryURL(input)
        let partial = url.appendingPathExtension("partial")
        do {
            try SafeTensors.write(tensors, to: partial)
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            try FileManager.default.moveItem(at: partial, to: url)
        } catch {
            try? FileManager.default.removeItem(at: partial)
            return false
        }
        bytesUsed += bytes
        return true
    }

    /// The teacher's forward pass of `input`: from the cache when stored with every tap in `needed`, else computed
    /// without gradients (recording `taps` ∪ `needed`) and stored.
    ///
    /// - Parameter input: degraded images `[B, 3, H, W]`.
    public func forward(_ teacher: any TappedModel, input: Tensor, needing needed: Set<String>) -> TeacherForward {
        if let hit = lookup(input, needing: needed) { return hit }
        let recorder = FeatureTaps(Set(taps).union(needed))
        let output = noGrad { teacher.forward(input, taps: recorder) }
        let forward = TeacherForward(output: output, taps: recorder.features)
        store(input, forward)
        return forward
    }

    /// The taps a study stores: the family's default taps, DCKD's skip taps for a cascadable teacher, and `extra`
    /// (the taps the runs name).
    public static func taps(for teacher: any TappedModel, extra: [String] = []) -> [String] {
        var out = DistillationTaps.defaults(for: teacher)
        if let cascadable = teacher as? CascadableTeacher { out += cascadable.skipTaps }
        out += extra
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }
}
