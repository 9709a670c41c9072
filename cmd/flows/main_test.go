package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
)

var flowsBin string

// TestMain builds the real binary once; the tests drive it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flows-bin-")
	if err != nil {
		panic(err)
	}
	flowsBin = filepath.Join(dir, "flows")
	if out, err := exec.Command("go", "build", "-o", flowsBin, ".").CombinedOutput(); err != nil {
		panic("build flows: " + err.Error() + "\n" + string(out))
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}
