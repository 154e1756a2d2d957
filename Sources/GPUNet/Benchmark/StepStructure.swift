import Foundation
import NetIO

/// How a training step meets its device, counted over one block of steps
/// queued exactly as the trainer queues them (``ModelTrainer``): each step's
/// loss writes into its slot of a ``StepResultLog``, whose block is read
/// once, and nothing else waits.
///
/// - launches, host waits and bytes between host and device are
///   ``DeviceCounters`` over the block (the final collection of its
///   results included), divided by its steps;
/// - the enqueue time is the median over the block's steps of the host's
///   time to queue one (forward, backward, update, bookkeeping). On OpenCL
///   that is what the host pays per step while the device works; on the
///   host device, which runs each operation as it is called, it is the
///   step itself.
public struct StepStructure: Codable, Equatable, Sendable {
    /// Steps counted: one block of ``stepsPerRead``.
    public var steps: Int
    public var stepsPerRead: Int
    public var launchesPerStep: Double
    public var hostWaitsPerStep: Double
    public var bytesToDevicePerStep: Double
    public var bytesToHostPerStep: Double
    public var enqueueSecondsPerStep: Double

    enum CodingKeys: String, CodingKey {
        case steps
        case stepsPerRead = "steps_per_read"
        case launchesPerStep = "launches_per_step"
        case hostWaitsPerStep = "host_waits_per_step"
        case bytesToDevicePerStep = "bytes_to_device_per_step"
        case bytesToHostPerStep = "bytes_to_host_per_step"
        case enqueueSecondsPerStep = "enqueue_seconds_per_step"
    }

    /// Queues `stepsPerRead` steps of `batch` images: `step(slot)` queues
    /// one training step whose loss writes its per-sample results into
    /// `slot`. Waits for the device before counting starts.
    public static func measure(
        device: any Device, batch: Int, stepsPerRead: Int, step: (Buffer) throws -> Void
    ) throws -> StepStructure {
        let log = try StepResultLog(device: device, maxBatch: batch, stepsPerRead: stepsPerRead)
        try device.finish()
        device.counters.reset()
        var enqueue: [Double] = []
        enqueue.reserveCapacity(stepsPerRead)
        for index in 0..<stepsPerRead {
            let start = Clocks.wall()
            try step(log.slot(forStep: index))
            _ = try log.queued(step: index, batch: batch)
            enqueue.append(Clocks.wall() - start)
        }
        let results = try log.drain()
        precondition(results.count == stepsPerRead)
        let c = device.counters
        let n = Double(stepsPerRead)
        return StepStructure(
            steps: stepsPerRead, stepsPerRead: stepsPerRead, launchesPerStep: Double(c.launches) / n,
            hostWaitsPerStep: Double(c.hostWaits) / n, bytesToDevicePerStep: Double(c.bytesToDevice) / n,
            bytesToHostPerStep: Double(c.bytesToHost) / n,
            enqueueSecondsPerStep: PlanBenchmark.Samples(enqueue).median)
    }

    /// One line for the bench's text output.
    public var summary: String {
        String(
            format: "per step (%d steps queued as training queues them, results read every %d): "
                + "%.2f launches, %.3f host waits, %.0f bytes to the device, %.0f bytes to the host, "
                + "enqueue time %.1f µs (median)",
            steps, stepsPerRead, launchesPerStep, hostWaitsPerStep, bytesToDevicePerStep, bytesToHostPerStep,
            1e6 * enqueueSecondsPerStep)
    }
}
