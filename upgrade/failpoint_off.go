//go:build !graftfailpoints

package upgrade

// failpoint does nothing in a release build: failpoints are test machinery
// (build with -tags graftfailpoints to have them), and this empty body is
// inlined away.
func (*Manager) failpoint(Failpoint) {}
