import Foundation

/// An sRGB colour with components in [0, 1] (gamma-encoded, as cairo takes them).
public struct RGB: Equatable, Sendable {
    public var red: Double
    public var green: Double
    public var blue: Double

    public init(_ red: Double, _ green: Double, _ blue: Double) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// From a 24-bit hex value, 0xRRGGBB.
    public init(hex: UInt32) {
        self.init(Double((hex >> 16) & 0xFF) / 255, Double((hex >> 8) & 0xFF) / 255, Double(hex & 0xFF) / 255)
    }

    public static let black = RGB(0, 0, 0)
    public static let white = RGB(1, 1, 1)
    /// Text and axis lines: a very dark grey, softer than black on white.
    public static let ink = RGB(0.13, 0.13, 0.13)
    /// Grid lines and missing cells.
    public static let lightGrey = RGB(0.88, 0.88, 0.88)
    public static let midGrey = RGB(0.55, 0.55, 0.55)

    /// "#rrggbb", for the HTML report.
    public var hexString: String {
        func byte(_ v: Double) -> Int { Int((min(max(v, 0), 1) * 255).rounded()) }
        return String(format: "#%02x%02x%02x", byte(red), byte(green), byte(blue))
    }

    /// Relative luminance (WCAG): Y of the linearised sRGB components,
    /// 0.2126 R + 0.7152 G + 0.0722 B. Used to pick black or white text on a cell.
    public var luminance: Double {
        let l = CIELab.linearise
        return 0.2126 * l(red) + 0.7152 * l(green) + 0.0722 * l(blue)
    }
}

/// CIE L*a*b* (D65 white), where straight-line interpolation between two colours
/// changes lightness evenly; colour maps are interpolated here, not in sRGB.
struct CIELab: Equatable {
    var l: Double, a: Double, b: Double

    // D65 reference white in XYZ (Y = 1).
    private static let white = (x: 0.95047, y: 1.0, z: 1.08883)
    private static let delta = 6.0 / 29.0

    static func linearise(_ c: Double) -> Double {
        c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4)
    }

    static func encode(_ c: Double) -> Double {
        let v = c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055
        return min(max(v, 0), 1)
    }

    init(l: Double, a: Double, b: Double) {
        self.l = l
        self.a = a
        self.b = b
    }

    /// sRGB → linear RGB → XYZ (the sRGB primaries' matrix) → Lab.
    init(_ rgb: RGB) {
        let r = Self.linearise(rgb.red)
        let g = Self.linearise(rgb.green)
        let bl = Self.linearise(rgb.blue)
        let x = 0.4124564 * r + 0.3575761 * g + 0.1804375 * bl
        let y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * bl
        let z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * bl
        func f(_ t: Double) -> Double {
            t > pow(Self.delta, 3) ? cbrt(t) : t / (3 * Self.delta * Self.delta) + 4.0 / 29.0
        }
        let fx = f(x / Self.white.x)
        let fy = f(y / Self.white.y)
        let fz = f(z / Self.white.z)
        l = 116 * fy - 16
        a = 500 * (fx - fy)
        b = 200 * (fy - fz)
    }

    /// Lab → XYZ → linear RGB (inverse matrix) → sRGB, clamped to the gamut.
    var rgb: RGB {
        func finv(_ t: Double) -> Double {
            t > Self.delta ? t * t * t : 3 * Self.delta * Self.delta * (t - 4.0 / 29.0)
        }
        let fy = (l + 16) / 116
        let x = Self.white.x * finv(fy + a / 500)
        let y = Self.white.y * finv(fy)
        let z = Self.white.z * finv(fy - b / 200)
        let r = 3.2404542 * x - 1.5371385 * y - 0.4985314 * z
        let g = -0.9692660 * x + 1.8760108 * y + 0.0415560 * z
        let bl = 0.0556434 * x - 0.2040259 * y + 1.0572252 * z
        return RGB(Self.encode(r), Self.encode(g), Self.encode(bl))
    }
}

/// A continuous colour map: t in [0, 1] → colour, piecewise-linear in CIE Lab
/// between anchor colours at fixed positions.
public struct ColorMap: Sendable {
    public let name: String
    /// Whether the map is meant for data centred at zero (t = 0.5 ↔ value 0).
    public let isDiverging: Bool
    private let positions: [Double]
    private let anchors: [(l: Double, a: Double, b: Double)]

    /// - Parameter stops: (position in [0,1], colour), positions strictly increasing from 0 to 1.
    public init(name: String, isDiverging: Bool, stops: [(Double, RGB)]) {
        precondition(
            stops.count >= 2 && stops.first!.0 == 0 && stops.last!.0 == 1,
            "ColorMap \(name): stops must run from 0 to 1")
        self.name = name
        self.isDiverging = isDiverging
        positions = stops.map(\.0)
        anchors = stops.map {
            let lab = CIELab($0.1)
            return (lab.l, lab.a, lab.b)
        }
    }

    /// The colour at t (clamped to [0, 1]); NaN gives light grey (a missing cell).
    public func color(at t: Double) -> RGB {
        guard t.isFinite else { return .lightGrey }
        let t = min(max(t, 0), 1)
        var i = 0
        while i < positions.count - 2 && t > positions[i + 1] { i += 1 }
        let span = positions[i + 1] - positions[i]
        let f = span > 0 ? (t - positions[i]) / span : 0
        let p = anchors[i]
        let q = anchors[i + 1]
        return CIELab(l: p.l + f * (q.l - p.l), a: p.a + f * (q.a - p.a), b: p.b + f * (q.b - p.b)).rgb
    }

    /// Diverging blue → near-white → orange-brown, centred at t = 0.5. Blue
    /// against orange stays distinct under the common red-green deficiencies
    /// (the two arms differ along the blue-yellow axis). The anchors pair up in
    /// CIE lightness (L* ≈ 32 at the ends, 68 halfway, 97 at the centre), so
    /// equal |value| reads as equal darkness on both sides.
    public static let diverging = ColorMap(
        name: "blue-white-orange", isDiverging: true,
        stops: [
            (0.00, RGB(hex: 0x1F4E79)),
            (0.25, RGB(hex: 0x6BAED6)),
            (0.50, RGB(hex: 0xF7F7F7)),
            (0.75, RGB(hex: 0xE8924A)),
            (1.00, RGB(hex: 0x8C2D04)),
        ])

    /// Sequential dark-purple → blue → teal → green → yellow (viridis-like):
    /// lightness increases monotonically, readable in grey and by colour-blind readers.
    public static let sequential = ColorMap(
        name: "viridis-like", isDiverging: false,
        stops: [
            (0.00, RGB(0.267, 0.005, 0.329)),
            (0.25, RGB(0.229, 0.322, 0.546)),
            (0.50, RGB(0.128, 0.567, 0.551)),
            (0.75, RGB(0.369, 0.789, 0.383)),
            (1.00, RGB(0.993, 0.906, 0.144)),
        ])

    /// White → black: ink on paper, for input digits.
    public static let greys = ColorMap(
        name: "greys", isDiverging: false,
        stops: [
            (0, RGB(1, 1, 1)), (1, RGB(0.05, 0.05, 0.05)),
        ])
}

/// Colours for categories (series, classes).
public enum Palette {
    /// Ten colours for ten classes: the Okabe–Ito palette (designed to stay
    /// distinguishable under protanopia, deuteranopia and tritanopia), with its
    /// yellow darkened so that points show on white, plus a mid grey and a
    /// dark wine for classes 8 and 9.
    public static let categorical: [RGB] = [
        RGB(hex: 0x0072B2),  // blue
        RGB(hex: 0xE69F00),  // orange
        RGB(hex: 0x009E73),  // bluish green
        RGB(hex: 0xD55E00),  // vermillion
        RGB(hex: 0xCC79A7),  // reddish purple
        RGB(hex: 0x56B4E9),  // sky blue
        RGB(hex: 0xC9B800),  // yellow, darkened for contrast on white
        RGB(hex: 0x000000),  // black
        RGB(hex: 0x999999),  // grey
        RGB(hex: 0x882255),  // wine
    ]

    /// The i-th categorical colour, cycling.
    public static func color(_ i: Int) -> RGB {
        categorical[((i % categorical.count) + categorical.count) % categorical.count]
    }
}
