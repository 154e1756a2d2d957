import Foundation

/// A figure ready to draw in any format: its file name, title, caption for
/// the report, size, and the drawing of its body (below the title).
public struct Figure {
    /// File name without extension, e.g. "singular_values".
    public let name: String
    public let title: String
    /// What the figure shows and what to read from it (used in report.html).
    public let caption: String
    public let width: Int
    public let height: Int
    let drawBody: (Canvas, Rect) throws -> Void

    public init(
        name: String, title: String, width: Int = 900, height: Int = 600, caption: String,
        drawBody: @escaping (Canvas, Rect) throws -> Void
    ) {
        self.name = name
        self.title = title
        self.caption = caption
        self.width = width
        self.height = height
        self.drawBody = drawBody
    }

    /// The encoded figure (PNG, SVG or PDF bytes).
    public func render(_ format: FigureFormat) throws -> Data {
        let canvas = try Canvas(width: width, height: height, format: format)
        canvas.text(title, x: canvas.width / 2, y: 12, size: FontSize.figureTitle, bold: true, h: .center, v: .top)
        let top = 12 + canvas.lineHeight(size: FontSize.figureTitle) + 10
        try drawBody(canvas, Rect(x: 10, y: top, width: canvas.width - 20, height: canvas.height - top - 10))
        return try canvas.finish()
    }

    /// Renders and writes `<directory>/<name>.<ext>` atomically. A PDF figure
    /// also keeps a PNG rendering in memory, for the HTML report (browsers do
    /// not show PDF images inline).
    public func write(to directory: URL, format: FigureFormat) throws -> FigureFile {
        let url = directory.appendingPathComponent("\(name).\(format.fileExtension)")
        try AtomicFile.write(try render(format), to: url)
        return FigureFile(
            name: name, title: title, caption: caption, url: url, format: format, width: width, height: height,
            pngPreview: format == .pdf ? try render(.png) : nil)
    }
}

/// A figure written to disk.
public struct FigureFile: Equatable, Sendable {
    public let name: String
    public let title: String
    public let caption: String
    public let url: URL
    public let format: FigureFormat
    /// Size in pixels (PNG, SVG) or points (PDF).
    public let width: Int
    public let height: Int
    /// For a PDF figure: the same figure as PNG bytes, which the HTML report embeds.
    public let pngPreview: Data?

    public init(
        name: String, title: String, caption: String, url: URL, format: FigureFormat, width: Int, height: Int,
        pngPreview: Data? = nil
    ) {
        self.name = name
        self.title = title
        self.caption = caption
        self.url = url
        self.format = format
        self.width = width
        self.height = height
        self.pngPreview = pngPreview
    }
}
