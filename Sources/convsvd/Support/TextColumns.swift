/// `s` as a left-aligned column `width` characters wide, for the text tables
/// of `bench`, `run`, `study` and `selftest`: padded with spaces, or followed
/// by one space when it fills the width or more, so that neighbouring columns
/// never run together.
func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
}
