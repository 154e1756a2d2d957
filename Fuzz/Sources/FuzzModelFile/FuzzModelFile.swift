import Models

/// libFuzzer entry: one model file's bytes. A decoded network goes through
/// shape inference on every dataset's input and a round trip (encode,
/// decode, compare; a mismatch traps so that libFuzzer records the input).
/// A thrown error is an expected rejection.
func fuzzModelFile(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = count > 0 ? Array(UnsafeBufferPointer(start: start!, count: count)) : []
    guard let network = try? ModelFile.decode(bytes) else { return 0 }
    for geometry in InputGeometry.all {
        if let summary = try? network.summary(input: geometry.shape, classes: geometry.classes) {
            _ = (summary.learnedParameterCount, summary.bufferElementCount, summary.trainingFLOPsPerImage)
        }
    }
    guard let again = try? ModelFile.decode(Array(ModelFile.encode(network).utf8)) else {
        fatalError("a decoded network failed to encode and decode again")
    }
    if again != network { fatalError("round trip changed the network") }
    return 0
}
