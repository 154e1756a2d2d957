/// `s` as a left-aligned column `width` characters wide, for the text tables
/// of `bench`, `run`, `study` and `selftest`: padded with spaces, or followed
/// by one space when it fills the width or more, so that neighbouring columns
/// never run together.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}

/// `rows` as lines of left-aligned columns, each as wide as its widest cell.
func columns(_ rows: [[String]]) -> [String] {
    let widths = rows.reduce(into: [Int]()) { widths, row in
        for (i, cell) in row.enumerated() {
            if i < widths.count { widths[i] = max(widths[i], cell.count + 1) } else { widths.append(cell.count + 1) }
        }
    }
    return rows.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : pad(cell, widths[i]) }.joined()
    }
}
