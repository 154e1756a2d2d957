/// The SVD analysis of a trained TinyConvNet, on the host with LAPACK.
public enum Analysis {}
