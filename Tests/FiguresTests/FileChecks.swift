import CCairo
import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Independent readers for the files the figures produce: the PNG header by
/// its byte layout (PNG spec: 8-byte signature, then the IHDR chunk with
/// big-endian width and height), the PNG pixels through cairo's PNG decoder,
/// SVG through an XML parser, PDF by its header, trailer and MediaBox.
enum FileChecks {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Width and height from a PNG's IHDR chunk; throws unless the file starts
    /// with the PNG signature followed by a 13-byte IHDR.
    static func pngSize(_ data: Data) throws -> (width: Int, height: Int) {
        let b = [UInt8](data.prefix(33))
        guard b.count == 33, Array(b[0..<8]) == pngSignature else { throw Failure(description: "no PNG signature") }
        func u32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        guard u32(8) == 13, String(bytes: b[12..<16], encoding: .ascii) == "IHDR" else {
            throw Failure(description: "first chunk is not a 13-byte IHDR")
        }
        return (u32(16), u32(20))
    }

    /// Pixel statistics of a PNG file decoded by cairo: the variance of the
    /// luminance (0…1) over all pixels, and the fraction of pixels that are not white.
    static func pngPixelStatistics(_ url: URL) throws -> (
        variance: Double, nonWhiteFraction: Double, width: Int, height: Int
    ) {
        guard let surface = cairo_image_surface_create_from_png(url.path) else {
            throw Failure(description: "cairo returned no surface")
        }
        defer { cairo_surface_destroy(surface) }
        let status = cairo_surface_status(surface)
        guard status == CAIRO_STATUS_SUCCESS else {
            throw Failure(
                description:
                    "cairo cannot decode \(url.lastPathComponent): \(String(cString: cairo_status_to_string(status)))")
        }
        cairo_surface_flush(surface)
        let width = Int(cairo_image_surface_get_width(surface))
        let height = Int(cairo_image_surface_get_height(surface))
        let stride = Int(cairo_image_surface_get_stride(surface))
        guard let base = cairo_image_surface_get_data(surface) else { throw Failure(description: "no pixel data") }
        var sum = 0.0
        var sumSquares = 0.0
        var nonWhite = 0
        for y in 0..<height {
            for x in 0..<width {
                // ARGB32 / RGB24: one native-endian 32-bit word per pixel.
                let word = (base + y * stride + 4 * x).withMemoryRebound(to: UInt32.self, capacity: 1) { $0.pointee }
                let r = Double((word >> 16) & 0xFF)
                let g = Double((word >> 8) & 0xFF)
                let bl = Double(word & 0xFF)
                let l = (0.299 * r + 0.587 * g + 0.114 * bl) / 255
                sum += l
                sumSquares += l * l
                if r < 250 || g < 250 || bl < 250 { nonWhite += 1 }
            }
        }
        let n = Double(width * height)
        let mean = sum / n
        return (sumSquares / n - mean * mean, Double(nonWhite) / n, width, height)
    }

    /// The root element of an XML document and its attributes; throws if it does not parse.
    static func xmlRoot(_ data: Data) throws -> (name: String, attributes: [String: String]) {
        final class RootGrabber: NSObject, XMLParserDelegate {
            var name: String?
            var attributes: [String: String] = [:]
            func parser(
                _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
            ) {
                if name == nil {
                    name = elementName
                    attributes = attributeDict
                }
            }
        }
        let parser = XMLParser(data: data)
        let grabber = RootGrabber()
        parser.delegate = grabber
        guard parser.parse(), let name = grabber.name else {
            throw Failure(
                description: "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "no root element")")
        }
        return (name, grabber.attributes)
    }

    /// The page size from a PDF's first /MediaBox, after checking the
    /// "%PDF-" header and the "%%EOF" trailer.
    static func pdfPageSize(_ data: Data) throws -> (width: Double, height: Double) {
        guard data.starts(with: Array("%PDF-".utf8)) else { throw Failure(description: "no %PDF- header") }
        let tail = String(decoding: data.suffix(16), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard tail.hasSuffix("%%EOF") else { throw Failure(description: "no %%EOF trailer") }
        let text = String(decoding: data, as: UTF8.self)
        guard
            let range = text.range(
                of: #"/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]"#, options: .regularExpression)
        else {
            throw Failure(description: "no /MediaBox")
        }
        let numbers = text[range].split(whereSeparator: { " []\n".contains($0) }).compactMap { Double($0) }
        guard numbers.count == 4 else { throw Failure(description: "unreadable /MediaBox \(text[range])") }
        return (numbers[2], numbers[3])
    }
}
