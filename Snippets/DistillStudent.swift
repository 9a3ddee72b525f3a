// Distil a small student from a trained teacher on a folder of clean images (colour denoising, σ = 25) with soft
// knowledge distillation, then score both networks with the evaluation loop `skd eval` uses.
//
//   swift run -c release DistillStudent teacher.safetensors restormer restormer-s photos/ runs/student 1000
import Foundation
import SwiftSKD

/// Distils `student` from `teacher` (whose trained weights are in `teacherWeights`) on the clean images in
/// `images`, writing logs and checkpoints to `run`; returns the student's and the teacher's mean PSNR (RGB, dB) on
/// the same images, denoised whole.
func distill(teacher teacherSpec: ModelSpec, teacherWeights: URL, student studentSpec: ModelSpec,
             images: URL, run: URL, iterations: Int, patchSize: Int = 128) throws -> (student: Double, teacher: Double) {
    // The teacher: a trained network, frozen by the objective.
    let teacher = teacherSpec.makeModel()
    try teacher.load(SafeTensors.read(teacherWeights).tensors)
    // The student: a smaller network of the same family, freshly initialised.
    let student = studentSpec.makeModel()

    // The objective: SKD (reconstruction + Gram-kernel feature term + contrastive term), the paper's weights.
    var method = DistillationOptions()
    method.method = .skd
    let objective = DistillationObjective(teacher: teacher, student: student, options: method)

    // The data: clean images; each batch's noisy inputs are synthesised from the run's seed.
    let data = try CleanDataset(folder: images, degradation: GaussianNoise(sigma: 25))

    // The loop: Adam with a cosine-annealed learning rate on random crops, checkpoints in `run`.
    var schedule = TrainingOptions()
    schedule.iterations = iterations
    schedule.batchSize = 2
    schedule.patchSize = patchSize
    let trainer = Trainer(objective: objective, training: data, validation: nil, options: schedule,
                          runDirectory: run, configJSON: studentSpec.jsonString())
    _ = try trainer.run()

    // Both networks on the whole images, with the same seeded noise.
    guard let scores = try RestorationEvaluation.run([student, teacher], on: data) else {
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: images.path])
    }
    return (scores.models[0].psnr, scores.models[1].psnr)
}

// snippet.hide
let arguments = CommandLine.arguments
func spec(_ text: String) throws -> ModelSpec { text.hasPrefix("{") ? try ModelSpec(json: text) : try ModelSpec.preset(text) }
guard arguments.count == 7 || arguments.count == 8, let iterations = Int(arguments[6]), iterations > 0,
      let patch = arguments.count == 8 ? Int(arguments[7]) : 128, patch >= 8 else {
    FileHandle.standardError.write(Data("usage: DistillStudent TEACHER.safetensors TEACHER-PRESET|JSON STUDENT-PRESET|JSON IMAGES RUN ITERATIONS [PATCH]\n".utf8))
    exit(2)
}
do {
    let psnr = try distill(teacher: spec(arguments[2]), teacherWeights: URL(fileURLWithPath: arguments[1]), student: spec(arguments[3]),
                           images: URL(fileURLWithPath: arguments[4]), run: URL(fileURLWithPath: arguments[5]),
                           iterations: iterations, patchSize: patch)
    print(String(format: "student PSNR %.2f dB, teacher PSNR %.2f dB", psnr.student, psnr.teacher))
} catch {
    FileHandle.standardError.write(Data("DistillStudent: \(error)\n".utf8))
    exit(1)
}
