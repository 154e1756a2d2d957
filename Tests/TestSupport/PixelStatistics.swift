/// The mean and population standard deviation of 8-bit pixels on the 0–1
/// scale (x = byte/255), summed in float64 in file order: the independent
/// reference for a data set's normalisation constants. float64 keeps the
/// sums of 47 M terms exact to far below the constants' fourth decimal.
public func pixelStatistics(_ pixels: [UInt8]) -> (mean: Double, standardDeviation: Double) {
    var sum = 0.0
    var sumSquares = 0.0
    for p in pixels {
        let x = Double(p) / 255
        sum += x
        sumSquares += x * x
    }
    let n = Double(pixels.count)
    let mean = sum / n
    return (mean, (sumSquares / n - mean * mean).squareRoot())
}

/// `x` rounded to `digits` decimals, for comparing with published constants.
public func rounded(_ x: Double, decimals digits: Int) -> Double {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return (x * scale).rounded() / scale
}
