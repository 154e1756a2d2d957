import Foundation
import NetIO

/// Progress of long work on standard error: on a terminal a bar with rate
/// and ETA redrawn in place (at most ten times a second); otherwise plain
/// lines, one per tenth of the work, so that logs stay readable.
final class Progress {
    private let label: String
    private let total: Int
    private let unit: String
    private let start = Clocks.wall()
    private var lastDraw = -Double.infinity
    private var nextPlainTenth = 1
    private let isTerminal: Bool

    /// `unit` names what `total` counts ("img", "step").
    init(_ label: String, total: Int, unit: String) {
        self.label = label
        self.total = max(1, total)
        self.unit = unit
        isTerminal = isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    /// Reports `done` of `total`, with an optional trailing note ("loss 0.12"),
    /// made only when a line is drawn (a training step reports every step).
    func update(_ done: Int, note: @autoclosure () -> String = "") {
        let now = Clocks.wall()
        let elapsed = now - start
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : .nan
        if isTerminal {
            guard now - lastDraw >= 0.1 || done == total else { return }
            lastDraw = now
            let width = 28
            let filled = min(width, width * done / total)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = "\(label) \(bar) \(percent(done)) \(format(rate)) \(unit)/s ETA \(clock(eta)) \(note())"
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
        } else {
            guard done * 10 >= nextPlainTenth * total else { return }
            while done * 10 >= nextPlainTenth * total { nextPlainTenth += 1 }
            log(
                "\(label) \(percent(done)) (\(done)/\(total) \(unit)) \(format(rate)) \(unit)/s ETA \(clock(eta)) \(note())"
            )
        }
    }

    /// Clears the bar (on a terminal) so that the next line starts clean.
    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
    }

    private func percent(_ done: Int) -> String { String(format: "%3d%%", 100 * done / total) }
    private func format(_ rate: Double) -> String {
        rate >= 100 ? String(format: "%.0f", rate) : String(format: "%.1f", rate)
    }
    private func clock(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// A line on standard error: progress and diagnostics, never results.
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Members done and the time left, one line on standard error per member.
/// The ETA is the members left × the mean time of the members trained so
/// far in this invocation (finished ones found on disk take no time; members
/// running side by side divide the wall time between them).
final class StudyProgress {
    private let total: Int
    private let start = Clocks.wall()
    private var done = 0, ran = 0
    private let lock = NSLock()

    init(total: Int) { self.total = total }

    func memberDone(seed: UInt64, ran trained: Bool) {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        if trained { ran += 1 }
        let elapsed = Clocks.seconds(since: start)
        let eta = ran > 0 ? String(format: "ETA %.0f s", Double(total - done) * elapsed / Double(ran)) : "ETA –"
        log(
            String(
                format: "study: %d/%d members done (seed %llu%@); %.0f s elapsed, %@", done, total, seed,
                trained ? "" : ", already finished", elapsed, eta))
    }
}
