package version

// Version follows semantic versioning.
const Version = "0.1.0"
