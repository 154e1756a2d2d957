import CCairo
import Foundation

/// The file format of a figure.
public enum FigureFormat: String, CaseIterable, Sendable, Codable {
    case png, svg, pdf

    public var fileExtension: String { rawValue }

    /// The MIME type, for the HTML report.
    public var mimeType: String {
        switch self {
        case .png: return "image/png"
        case .svg: return "image/svg+xml"
        case .pdf: return "application/pdf"
        }
    }
}

/// A rectangle in canvas units (pixels for PNG and SVG, points for PDF).
public struct Rect: Equatable, Sendable {
    public var x: Double, y: Double, width: Double, height: Double
    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
    public var minX: Double { x }
    public var minY: Double { y }
    public var maxX: Double { x + width }
    public var maxY: Double { y + height }
    public var midX: Double { x + width / 2 }
    public var midY: Double { y + height / 2 }

    /// This rectangle shrunk by the given margins.
    public func inset(top: Double = 0, left: Double = 0, bottom: Double = 0, right: Double = 0) -> Rect {
        Rect(x: x + left, y: y + top, width: max(0, width - left - right), height: max(0, height - top - bottom))
    }

    /// Splits into a rows × columns grid with `gap` between cells, row-major.
    public func grid(rows: Int, columns: Int, gap: Double = 0) -> [Rect] {
        let w = (width - gap * Double(columns - 1)) / Double(columns)
        let h = (height - gap * Double(rows - 1)) / Double(rows)
        var cells: [Rect] = []
        for r in 0..<rows {
            for c in 0..<columns {
                cells.append(Rect(x: x + Double(c) * (w + gap), y: y + Double(r) * (h + gap), width: w, height: h))
            }
        }
        return cells
    }
}

/// Text sizes, in canvas units. At 100% zoom on a laptop, 13 px is the
/// smallest size that stays comfortable to read; nothing is drawn smaller.
public enum FontSize {
    public static let figureTitle = 20.0
    public static let panelTitle = 16.0
    public static let axisLabel = 15.0
    public static let tick = 13.5
    public static let legend = 13.5
    public static let caption = 13.0
}

public enum HorizontalAlignment { case left, center, right }
public enum VerticalAlignment { case top, middle, baseline, bottom }

/// Collects the bytes cairo writes through its stream callback.
private final class ByteSink {
    var data = Data()
}

/// cairo's write callback: appends to the `ByteSink` passed as the closure.
private let appendToSink: cairo_write_func_t = { closure, bytes, length in
    guard let closure, let bytes else { return CAIRO_STATUS_WRITE_ERROR }
    let sink = Unmanaged<ByteSink>.fromOpaque(closure).takeUnretainedValue()
    sink.data.append(bytes, count: Int(length))
    return CAIRO_STATUS_SUCCESS
}

/// A drawing surface over cairo: an ARGB image (PNG), an SVG or a PDF document
/// of `width` × `height` units, white background, text in DejaVu Sans.
/// Draw on it, then call `finish()` once to get the encoded file's bytes.
public final class Canvas {
    public static let fontFamily = "DejaVu Sans"

    public let width: Double
    public let height: Double
    public let format: FigureFormat
    let surface: OpaquePointer
    let cr: OpaquePointer
    private let sink = ByteSink()
    private var finished = false

    public init(width: Int, height: Int, format: FigureFormat) throws {
        guard width > 0, height > 0, width <= 8192, height <= 8192 else {
            throw FigureError.invalidInput(figure: "canvas", reason: "size \(width)×\(height) outside 1…8192")
        }
        self.width = Double(width)
        self.height = Double(height)
        self.format = format
        let closure = Unmanaged.passUnretained(sink).toOpaque()
        let created: OpaquePointer?
        switch format {
        case .png:
            created = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(width), Int32(height))
        case .svg:
            created = cairo_svg_surface_create_for_stream(appendToSink, closure, Double(width), Double(height))
            // Pixel units, so that the SVG's declared size equals the PNG's.
            if let created { cairo_svg_surface_set_document_unit(created, CAIRO_SVG_UNIT_PX) }
        case .pdf:
            created = cairo_pdf_surface_create_for_stream(appendToSink, closure, Double(width), Double(height))
        }
        guard let created else {
            throw FigureError.cairo(context: "creating a \(format) surface", status: "null surface")
        }
        try Self.check(cairo_surface_status(created), "creating a \(width)×\(height) \(format) surface")
        guard let context = cairo_create(created) else {
            cairo_surface_destroy(created)
            throw FigureError.cairo(context: "creating a drawing context", status: "null context")
        }
        surface = created
        cr = context
        cairo_select_font_face(cr, Self.fontFamily, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
        fill(Rect(x: 0, y: 0, width: self.width, height: self.height), .white)
    }

    deinit {
        cairo_destroy(cr)
        cairo_surface_destroy(surface)
    }

    static func check(_ status: cairo_status_t, _ context: String) throws {
        if status != CAIRO_STATUS_SUCCESS {
            throw FigureError.cairo(context: context, status: String(cString: cairo_status_to_string(status)))
        }
    }

    /// Ends drawing and returns the encoded file (PNG, SVG or PDF bytes).
    public func finish() throws -> Data {
        precondition(!finished, "Canvas.finish called twice")
        finished = true
        try Self.check(cairo_status(cr), "drawing")
        switch format {
        case .png:
            cairo_surface_flush(surface)
            let closure = Unmanaged.passUnretained(sink).toOpaque()
            try Self.check(cairo_surface_write_to_png_stream(surface, appendToSink, closure), "encoding PNG")
        case .svg, .pdf:
            cairo_surface_finish(surface)
            try Self.check(cairo_surface_status(surface), "finishing the \(format) document")
        }
        return sink.data
    }

    // MARK: Paths and fills

    func setColor(_ c: RGB, alpha: Double = 1) {
        cairo_set_source_rgba(cr, c.red, c.green, c.blue, alpha)
    }

    public func fill(_ r: Rect, _ color: RGB, alpha: Double = 1) {
        setColor(color, alpha: alpha)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_fill(cr)
    }

    public func stroke(_ r: Rect, _ color: RGB, lineWidth: Double = 1) {
        setColor(color)
        cairo_set_line_width(cr, lineWidth)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_stroke(cr)
    }

    /// A polyline through `points`; non-finite points break the line.
    public func polyline(_ points: [(Double, Double)], _ color: RGB, lineWidth: Double = 2, dash: [Double] = []) {
        setColor(color)
        cairo_set_line_width(cr, lineWidth)
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND)
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND)
        dash.withUnsafeBufferPointer { cairo_set_dash(cr, $0.baseAddress, Int32($0.count), 0) }
        var penDown = false
        for (x, y) in points {
            if x.isFinite && y.isFinite {
                if penDown { cairo_line_to(cr, x, y) } else { cairo_move_to(cr, x, y) }
                penDown = true
            } else {
                penDown = false
            }
        }
        cairo_stroke(cr)
        cairo_set_dash(cr, nil, 0, 0)
    }

    public func line(
        from a: (Double, Double), to b: (Double, Double), _ color: RGB, lineWidth: Double = 1, dash: [Double] = []
    ) {
        polyline([a, b], color, lineWidth: lineWidth, dash: dash)
    }

    /// A filled marker centred at (x, y), with an optional outline.
    public func marker(
        _ shape: MarkerShape, x: Double, y: Double, radius: Double, fill color: RGB,
        alpha: Double = 1, outline: RGB? = nil
    ) {
        addMarkerPath(shape, x: x, y: y, radius: radius)
        setColor(color, alpha: alpha)
        if let outline {
            cairo_fill_preserve(cr)
            setColor(outline)
            cairo_set_line_width(cr, 1)
            cairo_stroke(cr)
        } else {
            cairo_fill(cr)
        }
    }

    /// Many markers of one colour filled as one path: one element in SVG and
    /// PDF instead of one per point (scatter plots have thousands).
    public func markers(
        _ shape: MarkerShape, at points: [(Double, Double)], radius: Double, fill color: RGB, alpha: Double = 1
    ) {
        for (x, y) in points where x.isFinite && y.isFinite {
            addMarkerPath(shape, x: x, y: y, radius: radius)
        }
        setColor(color, alpha: alpha)
        cairo_fill(cr)
    }

    private func addMarkerPath(_ shape: MarkerShape, x: Double, y: Double, radius: Double) {
        switch shape {
        case .circle:
            cairo_new_sub_path(cr)
            cairo_arc(cr, x, y, radius, 0, 2 * .pi)
        case .square:
            let s = radius * 0.9
            cairo_rectangle(cr, x - s, y - s, 2 * s, 2 * s)
        case .triangle:
            let s = radius * 1.15
            cairo_move_to(cr, x, y - s)
            cairo_line_to(cr, x + s * 0.87, y + s * 0.5)
            cairo_line_to(cr, x - s * 0.87, y + s * 0.5)
            cairo_close_path(cr)
        case .diamond:
            let s = radius * 1.2
            cairo_move_to(cr, x, y - s)
            cairo_line_to(cr, x + s, y)
            cairo_line_to(cr, x, y + s)
            cairo_line_to(cr, x - s, y)
            cairo_close_path(cr)
        }
    }

    /// Fills `r` with a gradient through `map` from t = 0 at the bottom to t = 1
    /// at the top (a colour bar), sampled at 64 stops (well under one visible
    /// step of the map per stop at any bar height we draw).
    public func verticalGradient(_ r: Rect, map: ColorMap) {
        guard let pattern = cairo_pattern_create_linear(r.minX, r.maxY, r.minX, r.minY) else { return }
        defer { cairo_pattern_destroy(pattern) }
        let stops = 64
        for i in 0...stops {
            let t = Double(i) / Double(stops)
            let c = map.color(at: t)
            cairo_pattern_add_color_stop_rgb(pattern, t, c.red, c.green, c.blue)
        }
        cairo_set_source(cr, pattern)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_fill(cr)
    }

    /// Draws `pixels` (row-major, `width` × `height`, opaque) as an image whose
    /// top-left corner is at (x, y), one image pixel per canvas unit. PNG output
    /// copies the pixels; SVG and PDF embed them as one lossless image (far
    /// smaller than a rectangle per pixel), drawn without smoothing.
    public func image(_ pixels: [RGB], width: Int, height: Int, x: Double, y: Double) {
        precondition(
            pixels.count == width * height && width > 0 && height > 0,
            "Canvas.image: \(pixels.count) pixels for \(width)×\(height)")
        guard let image = cairo_image_surface_create(CAIRO_FORMAT_RGB24, Int32(width), Int32(height)) else { return }
        defer { cairo_surface_destroy(image) }
        cairo_surface_flush(image)
        guard let base = cairo_image_surface_get_data(image) else { return }
        let stride = Int(cairo_image_surface_get_stride(image))
        func byte(_ v: Double) -> UInt32 { UInt32((min(max(v, 0), 1) * 255).rounded()) }
        for r in 0..<height {
            let row = (base + r * stride).withMemoryRebound(to: UInt32.self, capacity: width) { $0 }
            for c in 0..<width {
                let p = pixels[r * width + c]
                // RGB24: one native-endian 32-bit word per pixel, 0xXXRRGGBB.
                row[c] = 0xFF00_0000 | byte(p.red) << 16 | byte(p.green) << 8 | byte(p.blue)
            }
        }
        cairo_surface_mark_dirty(image)
        cairo_save(cr)
        cairo_set_source_surface(cr, image, x, y)
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST)
        cairo_rectangle(cr, x, y, Double(width), Double(height))
        cairo_fill(cr)
        cairo_restore(cr)
    }

    /// Runs `body` with drawing clipped to `r`.
    public func clipped(to r: Rect, _ body: () throws -> Void) rethrows {
        cairo_save(cr)
        cairo_rectangle(cr, r.x, r.y, r.width, r.height)
        cairo_clip(cr)
        defer { cairo_restore(cr) }
        try body()
    }

    // MARK: Text (cairo's toy API, DejaVu Sans through fontconfig)

    private func setFont(size: Double, bold: Bool) {
        cairo_select_font_face(
            cr, Self.fontFamily, CAIRO_FONT_SLANT_NORMAL,
            bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL)
        cairo_set_font_size(cr, size)
    }

    /// The advance width of `s` at the given size.
    public func textWidth(_ s: String, size: Double, bold: Bool = false) -> Double {
        setFont(size: size, bold: bold)
        var extents = cairo_text_extents_t()
        cairo_text_extents(cr, s, &extents)
        return extents.x_advance
    }

    /// Draws `s` anchored at (x, y): horizontally by its advance width, vertically
    /// by the font's ascent and descent (so that labels of one size line up
    /// whatever their letters); `angle` in radians rotates about the anchor.
    public func text(
        _ s: String, x: Double, y: Double, size: Double, bold: Bool = false, color: RGB = .ink,
        h: HorizontalAlignment = .left, v: VerticalAlignment = .baseline, angle: Double = 0
    ) {
        guard !s.isEmpty else { return }
        setFont(size: size, bold: bold)
        var te = cairo_text_extents_t()
        cairo_text_extents(cr, s, &te)
        var fe = cairo_font_extents_t()
        cairo_font_extents(cr, &fe)
        let dx: Double
        switch h {
        case .left: dx = 0
        case .center: dx = -te.x_advance / 2
        case .right: dx = -te.x_advance
        }
        let dy: Double
        switch v {
        case .top: dy = fe.ascent
        case .middle: dy = (fe.ascent - fe.descent) / 2
        case .baseline: dy = 0
        case .bottom: dy = -fe.descent
        }
        cairo_save(cr)
        cairo_translate(cr, x, y)
        if angle != 0 { cairo_rotate(cr, angle) }
        cairo_move_to(cr, dx, dy)
        setColor(color)
        cairo_show_text(cr, s)
        cairo_restore(cr)
    }

    /// The line height (ascent + descent) of the font at `size`.
    public func lineHeight(size: Double) -> Double {
        setFont(size: size, bold: false)
        var fe = cairo_font_extents_t()
        cairo_font_extents(cr, &fe)
        return fe.ascent + fe.descent
    }
}

/// Marker shapes for scatter points and line vertices; shape varies with the
/// series as well as colour, so that series stay apart in grey print.
public enum MarkerShape: CaseIterable, Sendable {
    case circle, square, triangle, diamond
}
