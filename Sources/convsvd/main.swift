print("convsvd")
