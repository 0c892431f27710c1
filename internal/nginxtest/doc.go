// Package nginxtest starts Debian's nginx on a loopback port, serving a
// directory, for tests of remote reading against a real static server.
// scripts/setup.sh installs it (nginx-light). When nginx is missing the
// test is skipped, except when CI=true: then it fails.
//
// It is for tests only, and must not import the project's other packages.
package nginxtest
