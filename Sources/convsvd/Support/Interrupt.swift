import Foundation

/// Ctrl-C handling for long work: the first SIGINT asks the work to stop at
/// its next safe point (the end of a training step); a second one exits at once.
enum Interrupt {
    private static let flag = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)

    static func install() {
        flag.pointee = 0
        signal(SIGINT) { _ in
            if Interrupt.flag.pointee != 0 { _exit(130) }
            Interrupt.flag.pointee = 1
        }
    }

    static var requested: Bool { flag.pointee != 0 }
}
