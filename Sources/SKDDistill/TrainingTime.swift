// How long the run behind a weights file trained: the figure `skd eval` and `skd demo` put beside PSNR.

import Foundation

/// The training time behind a weights file, so tables compare methods at the time they cost.
public enum TrainingTime {
    /// Seconds of training (steps and batch loading, not validation) of the run that wrote `file`:
    /// - a checkpoint's `model.safetensors`: the `seconds` stored in its `state.json` (runs of this version);
    /// - otherwise the run folder's `log.jsonl` (the file's folder, or three up from a checkpoint's model file): the
    ///   last `train_seconds` of a budgeted run, else the sum over processes of each process's last `seconds`
    ///   (`seconds` restarts at a resume).
    ///
    /// For `best.safetensors` this is the whole run's time, not the time to the best iteration. `nil` when neither
    /// source exists (converted weights, presets).
    public static func seconds(forWeights file: URL?) -> Double? {
        guard let file else { return nil }
        let folder = file.deletingLastPathComponent()
        let state = folder.appendingPathComponent("state.json")
        if let data = try? Data(contentsOf: state), let s = try? JSONDecoder().decode(CheckpointState.self, from: data), let t = s.seconds {
            return t
        }
        let candidates = [folder, folder.deletingLastPathComponent().deletingLastPathComponent()]
        for run in candidates {
            guard let text = try? String(contentsOf: run.appendingPathComponent("log.jsonl"), encoding: .utf8) else { continue }
            var total = 0.0, segment = -1.0, budgeted: Double? = nil
            for line in text.split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                if let t = o["train_seconds"] as? Double { budgeted = t }
                guard let seconds = o["seconds"] as? Double else { continue }
                if seconds < segment { total += segment }
                segment = seconds
            }
            if let budgeted { return budgeted }
            if segment >= 0 { return total + segment }
        }
        return nil
    }
}
