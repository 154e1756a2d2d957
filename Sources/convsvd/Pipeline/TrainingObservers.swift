import Foundation
import GPUNet

/// One line per epoch on standard output, a progress bar within the epoch.
final class EpochPrinter: TrainingObserver {
    private var progress: Progress?
    private let batchSize: Int
    private var printedHeader = false

    init(batchSize: Int) { self.batchSize = batchSize }

    func epochStarted(epoch: Int, of epochs: Int, steps: Int) {
        progress = Progress("epoch \(epoch)/\(epochs)", total: steps, unit: "step")
    }

    func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double) {
        progress?.update(step, note: String(format: "loss %.4f", meanLoss))
    }

    func epochFinished(_ m: EpochMetrics, of epochs: Int) {
        progress?.finish()
        if !printedHeader {
            print("epoch   loss     train acc  test acc   seconds  images/s")
            printedHeader = true
        }
        print(
            String(
                format: "%5d  %7.4f   %7.2f%%   %7.2f%%  %7.2f  %8.0f", m.epoch, m.loss, 100 * m.trainAccuracy,
                100 * m.testAccuracy, m.seconds, m.imagesPerSecond) + (m.svd.map { "  " + $0.summary } ?? ""))
        fflush(stdout)
    }
}

/// A member's epochs, one line each on standard error, named by its seed.
final class MemberObserver: TrainingObserver {
    let seed: UInt64
    init(seed: UInt64) { self.seed = seed }
    func epochStarted(epoch: Int, of epochs: Int, steps: Int) {}
    func stepFinished(epoch: Int, step: Int, steps: Int, images: Int, meanLoss: Double) {}
    func epochFinished(_ m: EpochMetrics, of epochs: Int) {
        log(
            String(
                format: "study: seed %llu: epoch %d/%d loss %.4f, test accuracy %.2f%%, %.1f s", seed, m.epoch, epochs,
                m.loss, 100 * m.testAccuracy, m.seconds))
    }
}
