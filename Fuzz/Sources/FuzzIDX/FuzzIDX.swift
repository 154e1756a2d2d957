import Foundation
import NetIO

/// libFuzzer entry: one IDX file's bytes (raw or gzip). Any thrown error is
/// an expected rejection; a crash, a trap or a sanitizer report is a bug.
func fuzzIDX(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count > 0 ? Data(bytes: start!, count: count) : Data()
    _ = try? IDXReader.parse(data, fileName: "fuzz")
    _ = try? IDXReader.images(data, fileName: "fuzz", expectedRows: nil, expectedColumns: nil)
    _ = try? IDXReader.labels(data, fileName: "fuzz")
    return 0
}
