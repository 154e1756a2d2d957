import Foundation

/// report.html: one self-contained page (no external resources): the results
/// table, the run (device, phase times, settings, the command), and every
/// figure embedded (PNG as a base64 data URI, SVG inline) with its caption.
public enum HTMLReport {
    /// The opening of a self-contained page, report.html's or study.html's:
    /// the head with the style sheet, then the body's heading `title` and a
    /// line of metadata `meta` (HTML, escaped by the caller).
    static func pageStart(title: String, meta: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>\(css)</style>
        </head>
        <body>
        <main>
        <h1>\(escape(title))</h1>
        <p class="meta">\(meta)</p>

        """
    }

    /// The page as text. Reads each figure's file to embed it.
    public static func render(_ doc: ReportDocument) throws -> String {
        var html = pageStart(
            title: doc.title,
            meta: "Generated \(escape(timestamp(doc.generatedAt))) · device: \(escape(doc.device))")
        let failed = doc.results.filter { $0.status == .fail }
        let checks = doc.results.filter { $0.status != .info }
        if failed.isEmpty {
            html += "<p class=\"banner pass\">All \(checks.count) checks passed.</p>\n"
        } else {
            html +=
                "<p class=\"banner fail\">\(failed.count) of \(checks.count) checks FAILED: "
                + failed.map { escape($0.label) }.joined(separator: "; ") + "</p>\n"
        }
        html += "<p>\(escape(doc.summary))</p>\n"
        html += "<nav><strong>Contents:</strong> <a href=\"#results\">Results</a> · <a href=\"#run\">Run</a>"
        for f in doc.figures { html += " · <a href=\"#fig-\(escape(f.name))\">\(escape(f.title))</a>" }
        html += "</nav>\n"

        html += "<section id=\"results\">\n<h2>Results</h2>\n" + resultsTable(doc.results) + "</section>\n"
        html += "<section id=\"run\">\n<h2>Run</h2>\n" + runSection(doc) + "</section>\n"
        html += "<section id=\"figures\">\n<h2>Figures</h2>\n"
        for (i, f) in doc.figures.enumerated() {
            html += try figureBlock(f, index: i + 1)
        }
        html += "</section>\n</main>\n</body>\n</html>\n"
        return html
    }

    /// Renders and writes the page atomically.
    public static func write(_ doc: ReportDocument, to url: URL) throws {
        try AtomicFile.write(Data(try render(doc).utf8), to: url)
    }

    // MARK: Sections

    static func resultsTable(_ rows: [ResultRow]) -> String {
        var sections: [String] = []
        for r in rows where !sections.contains(r.section) { sections.append(r.section) }
        var html =
            "<table class=\"results\">\n<thead><tr><th>Quantity</th><th>Value</th><th>Rule</th><th>Status</th><th>Kind</th></tr></thead>\n<tbody>\n"
        for s in sections {
            html += "<tr class=\"section\"><th colspan=\"5\">\(escape(s))</th></tr>\n"
            for r in rows where r.section == s {
                let status =
                    r.status == .info
                    ? "" : "<span class=\"badge \(r.status == .pass ? "pass" : "fail")\">\(r.status.rawValue)</span>"
                html +=
                    "<tr><td>\(escape(r.label))</td><td class=\"num\">\(escape(r.value))</td>"
                    + "<td class=\"num\">\(escape(r.rule))</td><td>\(status)</td><td>\(escape(r.kind))</td></tr>\n"
            }
        }
        html += "</tbody>\n</table>\n"
        if rows.contains(where: { !$0.kind.isEmpty }) {
            html +=
                "<p class=\"meta\">Kind: <em>consistency</em>, an identity that holds by construction once LAPACK is "
                + "accurate (it guards our own bookkeeping); <em>independent</em>, two different computations that could disagree.</p>\n"
        }
        return html
    }

    static func runSection(_ doc: ReportDocument) -> String {
        var html = "<h3>Device</h3>\n<p>\(escape(doc.device))</p>\n"
        html +=
            "<h3>Time per phase</h3>\n<table class=\"narrow\">\n<thead><tr><th>Phase</th><th>Seconds</th></tr></thead>\n<tbody>\n"
        for p in doc.phases {
            html += "<tr><td>\(escape(p.phase))</td><td class=\"num\">\(String(format: "%.2f", p.seconds))</td></tr>\n"
        }
        html += "</tbody>\n</table>\n"
        html += "<h3>Settings</h3>\n<table class=\"narrow\">\n<tbody>\n"
        for s in doc.settings {
            html += "<tr><td>\(escape(s.name))</td><td><code>\(escape(s.value))</code></td></tr>\n"
        }
        html += "</tbody>\n</table>\n"
        html += "<h3>Reproduce</h3>\n<pre><code>\(escape(doc.command))</code></pre>\n"
        return html
    }

    static func figureBlock(_ f: FigureFile, index: Int) throws -> String {
        let embedded: String
        let data: Data
        do {
            data = try Data(contentsOf: f.url)
        } catch {
            throw FigureError.write(
                path: f.url.path, reason: "cannot read the figure to embed it in the report: \(error)")
        }
        let alt = escape(f.title)
        switch f.format {
        case .png:
            embedded =
                "<img src=\"data:image/png;base64,\(data.base64EncodedString())\" width=\"\(f.width)\" height=\"\(f.height)\" alt=\"\(alt)\">"
        case .svg:
            guard let text = String(data: data, encoding: .utf8) else {
                throw FigureError.write(path: f.url.path, reason: "the SVG is not UTF-8 text")
            }
            embedded = inlineSVG(text, idPrefix: "f\(index)-")
        case .pdf:
            guard let preview = f.pngPreview else {
                throw FigureError.invalidInput(
                    figure: f.name, reason: "a PDF figure needs its PNG preview to be shown in the report")
            }
            embedded =
                "<img src=\"data:image/png;base64,\(preview.base64EncodedString())\" width=\"\(f.width)\" height=\"\(f.height)\" alt=\"\(alt)\">"
        }
        return """
            <figure id="fig-\(escape(f.name))">
            \(embedded)
            <figcaption><strong>Figure \(index). \(escape(f.title)).</strong> \(escape(f.caption)) <span class="file">(\(escape(f.url.lastPathComponent)))</span></figcaption>
            </figure>

            """
    }

    /// cairo's SVG without its XML declaration, and with every id (and every
    /// reference to one) prefixed: cairo names glyphs and clips "glyph0-1",
    /// "clip1" … in every file, and ids must be unique in one HTML page.
    static func inlineSVG(_ svg: String, idPrefix: String) -> String {
        var s = svg
        if let start = s.range(of: "<?xml"), let end = s.range(of: "?>", range: start.upperBound..<s.endIndex) {
            s.removeSubrange(start.lowerBound..<end.upperBound)
        }
        s = s.replacingOccurrences(of: " id=\"", with: " id=\"\(idPrefix)")
        s = s.replacingOccurrences(of: "href=\"#", with: "href=\"#\(idPrefix)")
        s = s.replacingOccurrences(of: "url(#", with: "url(#\(idPrefix)")
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Helpers

    /// HTML-escapes text for element content and quoted attributes.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func timestamp(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }

    static let css = """
        :root { --ink: #222; --muted: #666; --rule: #ddd; --pass: #1a7f37; --fail: #b42318; --band: #f6f7f9; }
        * { box-sizing: border-box; }
        body { margin: 0; color: var(--ink); background: #fff;
               font: 16px/1.5 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
        main { max-width: 1180px; margin: 0 auto; padding: 24px 20px 64px; }
        h1 { font-size: 28px; margin: 0 0 4px; }
        h2 { font-size: 22px; margin: 40px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--rule); }
        h3 { font-size: 17px; margin: 20px 0 8px; }
        .meta { color: var(--muted); margin: 0 0 16px; }
        .banner { padding: 10px 14px; border-radius: 6px; font-weight: bold; }
        .banner.pass { background: #e7f5ec; color: var(--pass); border: 1px solid #b7e1c4; }
        .banner.fail { background: #fdecea; color: var(--fail); border: 1px solid #f5c2bd; }
        nav { background: var(--band); padding: 10px 14px; border-radius: 6px; font-size: 14px; }
        a { color: #0b5cad; }
        table { border-collapse: collapse; width: 100%; font-size: 14.5px; }
        table.narrow { width: auto; min-width: 50%; }
        th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--rule); vertical-align: top; }
        thead th { background: var(--band); }
        tr.section th { background: #eef1f5; font-size: 15px; padding-top: 10px; }
        td.num { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13.5px; }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12.5px; font-weight: bold; }
        .badge.pass { background: #e7f5ec; color: var(--pass); }
        .badge.fail { background: #fdecea; color: var(--fail); }
        pre { background: var(--band); padding: 12px 14px; border-radius: 6px; overflow-x: auto; }
        code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13.5px; }
        figure { margin: 28px 0; padding: 12px; border: 1px solid var(--rule); border-radius: 6px; }
        figure img, figure svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
        figcaption { margin-top: 10px; font-size: 15px; color: #333; }
        .file { color: var(--muted); font-size: 13px; }
        """
}
