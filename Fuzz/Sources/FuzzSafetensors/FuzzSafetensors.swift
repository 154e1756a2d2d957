import Foundation
import NetIO

/// libFuzzer entry: one safetensors file's bytes. A parsed file must also
/// survive a round trip (serialise, parse, compare) and the checkpoint view;
/// a mismatch traps so that libFuzzer records the input.
func fuzzSafetensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count > 0 ? Data(bytes: start!, count: count) : Data()
    guard let file = try? SafetensorsFile.parse(data, fileName: "fuzz") else { return 0 }
    _ = try? Checkpoint(file, requireFinite: true)
    for tensor in file.tensors {
        _ = try? tensor.floats()
        _ = try? tensor.doubles()
        _ = try? tensor.integers()
    }
    guard let bytes = try? file.serialized(), let again = try? SafetensorsFile.parse(bytes, fileName: "fuzz") else {
        fatalError("a parsed file failed to serialise and parse again")
    }
    if again != file { fatalError("round trip changed the file") }
    return 0
}
