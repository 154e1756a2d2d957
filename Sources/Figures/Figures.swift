/// Figures (cairo) and the HTML report.
public enum Figures {}
