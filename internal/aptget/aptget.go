// Package aptget installs a Debian package a test needs when its program
// is missing (chromium for the dashboard's browser tests, prometheus for
// promtool): as root, or with password-less sudo; otherwise the test
// fails saying what to install. Tests only: the services install nothing.
package aptget

import (
	"os"
	"os/exec"
	"testing"
)

// Program returns the first of paths that exists, installing pkg with
// apt-get when none does (the index updated once if the first try fails).
func Program(t testing.TB, pkg string, paths ...string) string {
	t.Helper()
	find := func() string {
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	var prefix []string
	switch {
	case os.Geteuid() == 0:
	case exec.Command("sudo", "-n", "true").Run() == nil:
		prefix = []string{"sudo", "-n"}
	default:
		t.Fatalf("this test needs Debian's %s (%s) and this user cannot install it: sudo apt-get install %s", pkg, paths[0], pkg)
	}
	run := func(args ...string) ([]byte, error) {
		all := append(append([]string{}, prefix...), args...)
		return exec.Command(all[0], all[1:]...).CombinedOutput()
	}
	t.Logf("installing %s with apt-get (one-time set-up)", pkg)
	install := []string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", pkg}
	out, err := run(install...)
	if err != nil {
		_, _ = run("apt-get", "update", "-q")
		out, err = run(install...)
	}
	if p := find(); p != "" {
		return p // installed (a service it could not start is no matter)
	}
	t.Fatalf("installing %s: %v\n%s", pkg, err, out)
	return ""
}
