import Foundation
import NetIO

/// libFuzzer entry: one CIFAR-10 binary file's bytes. Any thrown error is an
/// expected rejection; a crash, a trap, a sanitizer report, or accepted
/// records that differ from the bytes they came from are bugs.
func fuzzCIFAR10(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count > 0 ? Data(bytes: start!, count: count) : Data()
    guard let (pixels, labels) = try? CIFAR10Loader.records(data, fileName: "fuzz") else { return 0 }
    let size = CIFAR10Loader.recordSize
    let bytes = [UInt8](data)
    precondition(labels.count * size == bytes.count && pixels.count == labels.count * (size - 1))
    for k in 0..<labels.count {
        precondition(labels[k] == bytes[k * size] && labels[k] < 10)
        precondition(pixels[(k * (size - 1))..<((k + 1) * (size - 1))] == bytes[(k * size + 1)..<((k + 1) * size)])
    }
    return 0
}
